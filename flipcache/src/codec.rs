//! Codecs: how a value becomes bytes in Redis and back. The default ([`FlipValue`]), JSON
//! (serde_json) and custom closures, behind one object-safe trait.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::value::FlipValue;

/// Why a [`ValueCodec`] could not encode or decode a value: the encoder's or decoder's own
/// error (a `serde_json::Error`, a `ParseIntError`, a message), kept as the
/// [`source`](std::error::Error::source) of the cache's [`Error`](crate::Error).
///
/// Anything `Into<CodecError>` converts with `?` or `.into()`: every error type, `String`
/// and `&str`.
///
/// ```
/// let e: flipcache::CodecError = "not a number".into();
/// assert_eq!(e.to_string(), "not a number");
/// ```
pub type CodecError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Turns values into the bytes stored in Redis and back.
///
/// Implement it to plug in any format; pass it with
/// [`Builder::value_codec`](crate::Builder::value_codec).
///
/// ```
/// use flipcache::ValueCodec;
/// struct Upper;
/// impl ValueCodec<String> for Upper {
///     fn encode(&self, v: &String, out: &mut Vec<u8>) -> Result<(), flipcache::CodecError> {
///         out.extend_from_slice(v.to_uppercase().as_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, flipcache::CodecError> {
///         Ok(String::from_utf8(bytes.to_vec())?)
///     }
/// }
/// let mut out = Vec::new();
/// Upper.encode(&"a".to_string(), &mut out).unwrap();
/// assert_eq!(out, b"A");
/// ```
pub trait ValueCodec<V>: Send + Sync + 'static {
    /// Appends the encoded form of `value` to `out`.
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes bytes read from Redis.
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// The codec a type has by default: its [`FlipValue`] encoding.
///
/// ```
/// use flipcache::{DefaultCodec, ValueCodec};
/// let mut out = Vec::new();
/// DefaultCodec.encode(&5u32, &mut out).unwrap();
/// assert_eq!(out, b"5");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultCodec;

impl<V: FlipValue> ValueCodec<V> for DefaultCodec {
    #[inline]
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        value.encode_value(out).map_err(CodecError::from)
    }
    #[inline]
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        V::decode_value(bytes).map_err(CodecError::from)
    }
}

/// JSON text through serde_json, readable by the Python original's `value_type="json"`.
///
/// ```
/// use flipcache::{JsonCodec, ValueCodec};
/// let mut out = Vec::new();
/// JsonCodec.encode(&vec![1, 2], &mut out).unwrap();
/// assert_eq!(out, b"[1,2]");
/// let back: Vec<i32> = JsonCodec.decode(b"[1, 2]").unwrap();
/// assert_eq!(back, [1, 2]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl<V: Serialize + DeserializeOwned> ValueCodec<V> for JsonCodec {
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        Ok(serde_json::to_writer(out, value)?)
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

type EncodeFn<V> = Arc<dyn Fn(&V, &mut Vec<u8>) + Send + Sync>;
type DecodeFn<V> = Arc<dyn Fn(&[u8]) -> Result<V, CodecError> + Send + Sync>;

/// A codec made of two closures, set with
/// [`Builder::value_encoder`](crate::Builder::value_encoder) and
/// [`Builder::value_decoder`](crate::Builder::value_decoder) (or their bytes variants).
///
/// ```
/// use flipcache::{ClosureCodec, ValueCodec};
/// let codec = ClosureCodec::<u8>::new()
///     .encoder(|v: &u8| format!("<{v}>"))
///     .decoder(|s: &str| s.trim_matches(['<', '>']).parse::<u8>());
/// let mut out = Vec::new();
/// codec.encode(&7, &mut out).unwrap();
/// assert_eq!(out, b"<7>");
/// assert_eq!(codec.decode(b"<7>").unwrap(), 7);
/// assert_eq!(
///     format!("{codec:?}"),
///     r#"ClosureCodec { encoder: Some("<closure>"), decoder: Some("<closure>") }"#
/// );
/// ```
pub struct ClosureCodec<V> {
    encode: Option<EncodeFn<V>>,
    decode: Option<DecodeFn<V>>,
}

impl<V> Clone for ClosureCodec<V> {
    fn clone(&self) -> Self {
        Self {
            encode: self.encode.clone(),
            decode: self.decode.clone(),
        }
    }
}

/// Shows which closures are set, never the closures themselves.
impl<V> std::fmt::Debug for ClosureCodec<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosureCodec")
            .field("encoder", &self.encode.as_ref().map(|_| "<closure>"))
            .field("decoder", &self.decode.as_ref().map(|_| "<closure>"))
            .finish()
    }
}

impl<V> Default for ClosureCodec<V> {
    fn default() -> Self {
        Self {
            encode: None,
            decode: None,
        }
    }
}

impl<V: 'static> ClosureCodec<V> {
    /// A codec with neither closure set yet.
    ///
    /// ```
    /// let c = flipcache::ClosureCodec::<String>::new();
    /// assert!(!c.is_complete());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the encoder: the value's text form, as the Python original's `value_encoder`.
    ///
    /// ```
    /// let c = flipcache::ClosureCodec::<u8>::new().encoder(|v: &u8| v.to_string());
    /// assert!(!c.is_complete());
    /// ```
    pub fn encoder(mut self, f: impl Fn(&V) -> String + Send + Sync + 'static) -> Self {
        self.encode = Some(Arc::new(move |v, out| {
            out.extend_from_slice(f(v).as_bytes())
        }));
        self
    }

    /// Sets a bytes encoder.
    ///
    /// ```
    /// let c = flipcache::ClosureCodec::<u8>::new().encoder_bytes(|v: &u8| vec![*v]);
    /// assert!(!c.is_complete());
    /// ```
    pub fn encoder_bytes(mut self, f: impl Fn(&V) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.encode = Some(Arc::new(move |v, out| out.extend_from_slice(&f(v))));
        self
    }

    /// Sets the decoder, given the stored text; a value that is not UTF-8 is a decode error.
    ///
    /// ```
    /// let c = flipcache::ClosureCodec::<u8>::new()
    ///     .encoder(|v: &u8| v.to_string())
    ///     .decoder(|s: &str| s.parse::<u8>());
    /// assert!(c.is_complete());
    /// ```
    pub fn decoder<E: Into<CodecError>>(
        mut self,
        f: impl Fn(&str) -> Result<V, E> + Send + Sync + 'static,
    ) -> Self {
        self.decode = Some(Arc::new(move |bytes| {
            let text = std::str::from_utf8(bytes)?;
            f(text).map_err(Into::into)
        }));
        self
    }

    /// Sets a bytes decoder.
    ///
    /// ```
    /// let c = flipcache::ClosureCodec::<u8>::new()
    ///     .encoder_bytes(|v: &u8| vec![*v])
    ///     .decoder_bytes(|b: &[u8]| b.first().copied().ok_or("empty"));
    /// assert!(c.is_complete());
    /// ```
    pub fn decoder_bytes<E: Into<CodecError>>(
        mut self,
        f: impl Fn(&[u8]) -> Result<V, E> + Send + Sync + 'static,
    ) -> Self {
        self.decode = Some(Arc::new(move |bytes| f(bytes).map_err(Into::into)));
        self
    }

    /// Whether both closures are set.
    ///
    /// ```
    /// assert!(!flipcache::ClosureCodec::<u8>::new().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.encode.is_some() && self.decode.is_some()
    }
}

impl<V: 'static> ValueCodec<V> for ClosureCodec<V> {
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match &self.encode {
            Some(f) => {
                f(value, out);
                Ok(())
            }
            None => Err("no value_encoder was set".into()),
        }
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        match &self.decode {
            Some(f) => f(bytes),
            None => Err("no value_decoder was set".into()),
        }
    }
}

/// The builder's codec after [`value_encoder`](crate::Builder::value_encoder) (or
/// [`value_encoder_bytes`](crate::Builder::value_encoder_bytes)) and before the matching
/// decoder: a builder in this state has no `build`, so a cache that could write values but not
/// read them back is a compile error.
///
/// ```
/// use flipcache::{Builder, FlipCache, MissingDecoder};
/// let half: Builder<u64, u8, MissingDecoder<u8>> =
///     FlipCache::<u64, u8>::builder("b").value_encoder(|v: &u8| v.to_string());
/// let whole = half.value_decoder(|s: &str| s.parse::<u8>()); // now it can `build()`
/// ```
pub struct MissingDecoder<V>(pub(crate) ClosureCodec<V>);

/// The builder's codec after [`value_decoder`](crate::Builder::value_decoder) (or
/// [`value_decoder_bytes`](crate::Builder::value_decoder_bytes)) and before the matching
/// encoder: a builder in this state has no `build`.
///
/// ```
/// use flipcache::{Builder, FlipCache, MissingEncoder};
/// let half: Builder<u64, u8, MissingEncoder<u8>> =
///     FlipCache::<u64, u8>::builder("b").value_decoder(|s: &str| s.parse::<u8>());
/// let whole = half.value_encoder(|v: &u8| v.to_string()); // now it can `build()`
/// ```
pub struct MissingEncoder<V>(pub(crate) ClosureCodec<V>);

impl<V> std::fmt::Debug for MissingDecoder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MissingDecoder").field(&self.0).finish()
    }
}

impl<V> std::fmt::Debug for MissingEncoder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MissingEncoder").field(&self.0).finish()
    }
}

/// The builder's choice of codec, turned into a shared codec object at build time.
///
/// Implemented by [`DefaultCodec`] (for [`FlipValue`] types), [`JsonCodec`], [`ClosureCodec`]
/// and any `Arc<dyn ValueCodec<V>>`; you rarely name it yourself.
///
/// ```
/// use flipcache::{CodecChoice, DefaultCodec};
/// let codec = CodecChoice::<u64>::into_codec(DefaultCodec).unwrap();
/// let mut out = Vec::new();
/// codec.encode(&1, &mut out).unwrap();
/// assert_eq!(out, b"1");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a complete codec for `{V}`, so the cache cannot be built",
    label = "this builder's codec cannot both write and read `{V}`",
    note = "pair `value_encoder(..)` with `value_decoder(..)` (or `value_encoder_bytes` with \
            `value_decoder_bytes`): a cache must read back what it writes"
)]
pub trait CodecChoice<V> {
    /// The codec object, or why this choice cannot work.
    fn into_codec(self) -> Result<Arc<dyn ValueCodec<V>>, String>;
}

impl<V: FlipValue> CodecChoice<V> for DefaultCodec {
    fn into_codec(self) -> Result<Arc<dyn ValueCodec<V>>, String> {
        Ok(Arc::new(DefaultCodec))
    }
}

impl<V: Serialize + DeserializeOwned + 'static> CodecChoice<V> for JsonCodec {
    fn into_codec(self) -> Result<Arc<dyn ValueCodec<V>>, String> {
        Ok(Arc::new(JsonCodec))
    }
}

impl<V: 'static> CodecChoice<V> for ClosureCodec<V> {
    fn into_codec(self) -> Result<Arc<dyn ValueCodec<V>>, String> {
        match (&self.encode, &self.decode) {
            (Some(_), Some(_)) => Ok(Arc::new(self)),
            (Some(_), None) => Err("value_encoder is set but value_decoder is not".into()),
            (None, Some(_)) => Err("value_decoder is set but value_encoder is not".into()),
            (None, None) => Err("no value_encoder or value_decoder was set".into()),
        }
    }
}

impl<V> CodecChoice<V> for Arc<dyn ValueCodec<V>> {
    fn into_codec(self) -> Result<Arc<dyn ValueCodec<V>>, String> {
        Ok(self)
    }
}
