//! [`FlipValue`]: value types with a default Redis encoding (text for strings, numbers and
//! `bool`, compatible with the Python original).

/// A value type with a default encoding, so `FlipCache::<K, V>::new(name)` needs no codec.
///
/// The built-in encodings are text, as the Python original writes them: `String` as UTF-8,
/// integers as decimal digits, floats as their shortest round-trip text (`"0.1"`, `"inf"`,
/// `"NaN"`), `bool` as `"1"`/`"0"` (reading also accepts `true`/`false`/`True`/`False`).
/// Types deriving [`FlipCodec`](crate::FlipCodec) get a compact binary encoding instead.
/// For other types, use [`json`](crate::Builder::json) or custom closures on the builder.
///
/// ```
/// use flipcache::FlipValue;
/// let mut out = Vec::new();
/// 246u64.encode_value(&mut out).unwrap();
/// assert_eq!(out, b"246");
/// assert_eq!(u64::decode_value(b"246").unwrap(), 246);
/// assert!(u64::decode_value(b"x").is_err());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache value: it has no default encoding",
    label = "`{Self}` does not implement `flipcache::FlipValue`",
    note = "derive `flipcache::FlipCodec` for it (a compact binary encoding), call `.json()` on \
            the builder to store it as JSON (serde), or give `.value_encoder(..)` and \
            `.value_decoder(..)` closures"
)]
pub trait FlipValue: Clone + Send + Sync + 'static {
    /// Appends the encoded form of `self` to `out`.
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String>;
    /// Decodes a value read from Redis.
    fn decode_value(bytes: &[u8]) -> Result<Self, String>;
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

impl FlipValue for String {
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        text(bytes).map(str::to_owned)
    }
}

impl FlipValue for std::sync::Arc<str> {
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(self.as_bytes());
        Ok(())
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        text(bytes).map(Into::into)
    }
}

impl FlipValue for bool {
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.push(if *self { b'1' } else { b'0' });
        Ok(())
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        match bytes {
            b"1" | b"true" | b"True" => Ok(true),
            b"0" | b"false" | b"False" => Ok(false),
            _ => Err(format!("not a bool: {:?}", String::from_utf8_lossy(bytes))),
        }
    }
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl FlipValue for $t {
            #[inline]
            fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String> {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
                Ok(())
            }
            fn decode_value(bytes: &[u8]) -> Result<Self, String> {
                let t = text(bytes)?;
                t.trim().parse::<$t>().map_err(|e| {
                    format!("not a {}: {:?} ({e})", stringify!($t), t)
                })
            }
        }
    )*};
}
int_values!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! float_values {
    ($($t:ty),*) => {$(
        impl FlipValue for $t {
            fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), String> {
                use std::io::Write;
                // `Display` for floats is the shortest text that reads back exactly.
                let _ = write!(out, "{}", self);
                Ok(())
            }
            fn decode_value(bytes: &[u8]) -> Result<Self, String> {
                let t = text(bytes)?;
                t.trim().parse::<$t>().map_err(|e| {
                    format!("not a {}: {:?} ({e})", stringify!($t), t)
                })
            }
        }
    )*};
}
float_values!(f32, f64);

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<V: FlipValue>(v: V) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode_value(&mut out).unwrap();
        out
    }

    #[test]
    fn text_encodings_match_python() {
        assert_eq!(enc(String::from("héllo")), "héllo".as_bytes());
        assert_eq!(enc(-42i64), b"-42");
        assert_eq!(enc(0.1f64), b"0.1");
        assert_eq!(enc(true), b"1");
        assert_eq!(f64::decode_value(b"16.38").unwrap(), 16.38);
        assert_eq!(f64::decode_value(b"1e+20").unwrap(), 1e20);
        assert!(f64::decode_value(b"nan").unwrap().is_nan());
        assert_eq!(f64::decode_value(b"inf").unwrap(), f64::INFINITY);
        assert!(bool::decode_value(b"True").unwrap());
        assert!(String::decode_value(&[0xff, 0xfe]).is_err());
        assert_eq!(String::decode_value(b"").unwrap(), "");
    }

    #[test]
    fn integers_reject_garbage_and_overflow() {
        assert!(u8::decode_value(b"256").is_err());
        assert!(i64::decode_value(b"12x").is_err());
        assert_eq!(i64::decode_value(b"-9").unwrap(), -9);
    }
}
