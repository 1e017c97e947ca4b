//! FlipCodec: a fast, compact, versioned binary encoding for your own types, derived with
//! `#[derive(FlipCodec)]`.
//!
//! Deriving [`FlipCodec`] gives a type an encoding ([`to_bytes`] / [`from_bytes`]) and a
//! [`FlipValue`](crate::FlipValue) impl, so it can be a cache value with no codec setup:
//!
//! ```no_run
//! use flipcache::{FlipCache, FlipCodec};
//!
//! #[derive(FlipCodec, Clone, Debug, Default)]
//! struct Shape {
//!     name: String,
//!     dimensions: Vec<f64>,
//!     edges: i64,
//!     area: f64,
//! }
//!
//! # fn main() -> flipcache::Result<()> {
//! let shapes = FlipCache::<u64, Shape>::new("shapes")?;
//! let square = Shape { name: "square".into(), dimensions: vec![2.0, 2.0], edges: 4, area: 4.0 };
//! shapes.set(1, square)?;
//! # Ok(()) }
//! ```
//!
//! **Format.** Fields are written in declaration order with no names or tags: unsigned
//! integers as LEB128 varints, signed integers as zigzag varints (`u8`/`i8` as one raw
//! byte), `f32` as 4 little-endian IEEE 754 bytes, `f64` as a short decimal when it is one
//! (`4.1` in 2 bytes, `19.99` in 3: up to 6 decimal places, checked to decode bit-exact)
//! and as a tag byte and its 8 IEEE 754 bytes otherwise, `bool` as one byte, strings and
//! sequences as a varint length followed by the contents, `Option` as a `0`/`1` byte, enum
//! variants as a varint index (declaration order). A cache value adds a 9-byte header: the
//! format byte [`VALUE_HEADER`] and the type's 64-bit [`FINGERPRINT`](FlipCodec::FINGERPRINT).
//!
//! **Robustness.** Decoding never panics and never reads past its input; it rejects
//! truncated input, trailing bytes, invalid UTF-8, `bool`s and `char`s, overflowing or
//! overlong varints, unknown enum variants and duplicate map keys. A length prefix larger
//! than the remaining input could hold fails before anything is allocated, and
//! preallocation never exceeds what the remaining input can justify. Derived types nest at
//! most [`MAX_DEPTH`] levels deep, so hostile input cannot overflow the stack through a
//! recursive type.
//!
//! # Schema evolution
//!
//! The encoding has no field names or tags, so it cannot read a value written with another
//! layout. Instead, every derived type carries a compile-time fingerprint of its shape (type
//! name, field and variant names and order, field types as written, `with` paths; skipped
//! fields do not count), and each cache value starts with the fingerprint of the type that
//! wrote it. After you change a struct (add, remove, rename or reorder a field, change a
//! field's type), entries written by the old build no longer match: reading one returns
//! [`Error::Decode`](crate::Error::Decode) with a message such as ``stored value was written
//! by a different version of `Shape` (fingerprint mismatch: …)``, never a wrong value. What to
//! do about it:
//!
//! - **Treat it as a miss**: on `Err(e) if e.is_decode()`, recompute the value and `set` it,
//!   which overwrites the stale entry. Entries with a TTL also age out on their own.
//! - **Clear the cache** on deploy (`cache.clear()`), if a burst of recomputation is fine.
//! - **Bump the cache name** (`"shapes"` → `"shapes_v2"`) to keep old and new builds side by
//!   side during a rolling deploy; the old keys expire with their TTL.
//! - Memoized functions need nothing: a value that does not decode is recomputed.
//!
//! The fingerprint covers nested types too: each field type's own fingerprint is mixed in, so
//! changing `Inner` changes the fingerprint of an `Outer` holding `inner: Inner` or
//! `Vec<Inner>`, and a generic type mixes in its type arguments' (`Wrapper<u32>` and
//! `Wrapper<String>` differ). One exception: a field whose type names the type itself
//! (`children: Vec<Node>` inside `Node`, `Box<Self>`) is covered by its spelling only, since its
//! fingerprint would be defined in terms of itself; two types that contain each other do not
//! compile (a const-evaluation cycle) and need a hand-written `FINGERPRINT`. Renaming a type or
//! spelling a field type differently (`Vec<f64>` vs `std::vec::Vec<f64>`) also changes the
//! fingerprint, which is safe: it only costs a miss.
//!
//! [`from_bytes`] and [`to_bytes`] write the body alone, without the header or fingerprint
//! check; use [`encode_value`] / [`decode_value`] for the checked format.

pub(crate) mod derive;
mod envelope;
mod fingerprint;
mod float;
mod impls;
mod reader;
mod varint;

pub use envelope::{VALUE_HEADER, decode_value, encode_value};
pub use fingerprint::{Fingerprint, fnv1a64};
pub use reader::{DecodeError, MAX_DEPTH, Reader, ZERO_WIDTH_BUDGET};

/// A type with a compact binary encoding: usually `#[derive(FlipCodec)]`, which also
/// implements [`FlipValue`](crate::FlipValue) so the type can be a cache value.
///
/// ```
/// use flipcache::{from_bytes, to_bytes, FlipCodec};
/// use std::collections::HashMap;
///
/// #[derive(FlipCodec, Clone, Debug, PartialEq)]
/// enum Status {
///     Active,
///     Suspended { until: u64, reason: String },
///     Deleted(Option<String>),
/// }
///
/// #[derive(FlipCodec, Clone, Debug, PartialEq)]
/// struct User {
///     id: u64,
///     name: String,
///     tags: Vec<String>,
///     scores: HashMap<String, f64>,
///     status: Status,
///     #[flipcodec(skip)]
///     session_token: Option<String>, // not stored; `Default::default()` when decoded
/// }
///
/// let user = User {
///     id: 7,
///     name: "ada".into(),
///     tags: vec!["admin".into()],
///     scores: HashMap::from([("chess".to_string(), 9.5)]),
///     status: Status::Suspended { until: 1_700_000_000, reason: "spam".into() },
///     session_token: Some("secret".into()),
/// };
/// let bytes = to_bytes(&user);
/// let back: User = from_bytes(&bytes).unwrap();
/// assert_eq!(back, User { session_token: None, ..user });
/// ```
///
/// # The derive
///
/// Structs (named, tuple, unit) and enums (unit, tuple and struct variants) derive it;
/// unions do not. Fields are encoded in declaration order, enum variants by their index in
/// declaration order (explicit discriminants play no part).
///
/// For a generic type, each type parameter used in an encoded field gets a `T: FlipCodec`
/// bound (parameters used only inside `PhantomData` or in skipped or `with` fields do not),
/// and a skipped field whose type mentions a type parameter gets a `FieldType: Default`
/// bound.
///
/// The derive also implements [`FlipValue`](crate::FlipValue) with the checked format of
/// [`encode_value`] / [`decode_value`] (a header with the type's fingerprint, see the
/// [module docs](crate::flipcodec#schema-evolution)). `FlipValue` requires
/// `Clone + Send + Sync + 'static`, so derive `Clone` too; a generic type gets the impl
/// where `Self: Clone + Send + Sync + 'static`. Write `#[flipcodec(no_value)]` on the type to
/// leave `FlipValue` out (for a type that is never a cache value on its own, is not `Clone`,
/// or has its own `FlipValue` impl).
///
/// # Field attributes
///
/// - `#[flipcodec(skip)]`: the field is not encoded and takes `Default::default()` when
///   decoded (its type must implement `Default`). It is left out of the fingerprint.
/// - `#[flipcodec(with = path)]`: encode the field with the functions of module `path`
///   instead of its `FlipCodec` impl, for foreign types or a custom layout. The module must
///   provide, for the field's type `F`:
///
///   ```text
///   fn encode(value: &F, out: &mut Vec<u8>);
///   fn decode(input: &mut flipcache::Reader<'_>) -> Result<F, flipcache::DecodeError>;
///   ```
///
///   `decode` must read exactly the bytes `encode` wrote (usually by calling other types'
///   `FlipCodec::decode`), and return a [`DecodeError`] (never panic) on invalid input.
///
/// ```
/// use flipcache::{from_bytes, to_bytes, DecodeError, FlipCodec, Reader};
/// use std::net::Ipv4Addr;
///
/// mod ipv4 {
///     use flipcache::{DecodeError, Reader};
///     use std::net::Ipv4Addr;
///     pub fn encode(ip: &Ipv4Addr, out: &mut Vec<u8>) {
///         out.extend_from_slice(&ip.octets());
///     }
///     pub fn decode(input: &mut Reader<'_>) -> Result<Ipv4Addr, DecodeError> {
///         input.read_array::<4>().map(Ipv4Addr::from)
///     }
/// }
///
/// #[derive(FlipCodec, Clone, Debug, PartialEq)]
/// struct Peer {
///     #[flipcodec(with = ipv4)]
///     ip: Ipv4Addr,
///     port: u16,
/// }
///
/// let peer = Peer { ip: Ipv4Addr::new(10, 0, 0, 1), port: 6379 };
/// assert_eq!(to_bytes(&peer), [10, 0, 0, 1, 0xeb, 0x31]);
/// assert_eq!(from_bytes::<Peer>(&to_bytes(&peer)).unwrap(), peer);
/// ```
///
/// # Implementing it by hand
///
/// Write the fields with their own `encode`, read them back in the same order with their own
/// `decode`. Keep the defaults of the two constants unless you know better: a
/// [`FINGERPRINT`](FlipCodec::FINGERPRINT) of 0 means "no schema check", a
/// [`MIN_ENCODED_LEN`](FlipCodec::MIN_ENCODED_LEN) of 0 is always correct.
/// [`encoded_len_hint`](FlipCodec::encoded_len_hint) is optional too: any value is safe, and a
/// close upper bound spares [`to_bytes`] from growing its buffer.
///
/// ```
/// use flipcache::{from_bytes, to_bytes, DecodeError, FlipCodec, Reader};
///
/// #[derive(Debug, PartialEq)]
/// struct Even(u32);
///
/// impl FlipCodec for Even {
///     fn encode(&self, out: &mut Vec<u8>) {
///         (self.0 / 2).encode(out);
///     }
///     fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
///         let half = u32::decode(input)?;
///         half.checked_mul(2).map(Even).ok_or_else(|| input.error("Even overflows u32"))
///     }
/// }
///
/// assert_eq!(to_bytes(&Even(10)), [5]);
/// assert_eq!(from_bytes::<Even>(&[5]).unwrap(), Even(10));
/// ```
pub trait FlipCodec: Sized {
    /// A 64-bit hash of the type's schema, stored in front of every cache value and checked
    /// when it is read back. Derived types hash their name, fields and field types; std types
    /// hash their wire schema; the default, 0, is for hand-written impls.
    ///
    /// ```
    /// use flipcache::FlipCodec;
    /// mod v1 {
    ///     #[derive(flipcache::FlipCodec, Clone)]
    ///     pub struct Shape { pub name: String }
    /// }
    /// mod v2 {
    ///     #[derive(flipcache::FlipCodec, Clone)]
    ///     pub struct Shape { pub name: String, pub edges: i64 }
    /// }
    /// assert_ne!(v1::Shape::FINGERPRINT, v2::Shape::FINGERPRINT);
    /// assert_ne!(<Vec<u32>>::FINGERPRINT, <Vec<String>>::FINGERPRINT);
    /// ```
    const FINGERPRINT: u64 = 0;

    /// A lower bound on the encoded length in bytes, which lets decoding reject a length
    /// prefix that the remaining input cannot hold before it allocates. 0 is always correct;
    /// a value larger than what `encode` can write would let hostile input run long loops,
    /// so a hand-written impl should keep the default unless the bound is obvious.
    ///
    /// ```
    /// use flipcache::FlipCodec;
    /// assert_eq!(f32::MIN_ENCODED_LEN, 4);
    /// assert_eq!(<(u32, f32)>::MIN_ENCODED_LEN, 5);
    /// assert_eq!(<()>::MIN_ENCODED_LEN, 0);
    /// ```
    const MIN_ENCODED_LEN: usize = 0;

    /// An estimate of the length of `self`'s encoding, which [`to_bytes`] and
    /// [`encode_value`] use to size the output buffer before encoding, so that it need not
    /// grow (and be copied) along the way. Any value is correct: it is never trusted for
    /// anything but a capacity (and a huge one is capped). Derived types and std types return
    /// an upper bound that is cheap to compute (numbers count their longest form, so that a
    /// sequence of them costs one multiplication); the default is
    /// [`MIN_ENCODED_LEN`](FlipCodec::MIN_ENCODED_LEN).
    ///
    /// ```
    /// use flipcache::FlipCodec;
    /// assert_eq!(300u32.encoded_len_hint(), 5, "the longest u32 varint");
    /// assert_eq!("hi".to_string().encoded_len_hint(), 3);
    /// assert_eq!(vec![4.1f64, 3.4].encoded_len_hint(), 1 + 2 * 9);
    /// ```
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        Self::MIN_ENCODED_LEN
    }

    /// Appends the encoding of `self` to `out`.
    ///
    /// ```
    /// use flipcache::FlipCodec;
    /// let mut out = Vec::new();
    /// "hi".to_string().encode(&mut out);
    /// 300u32.encode(&mut out);
    /// assert_eq!(out, [2, b'h', b'i', 0xac, 0x02]);
    /// ```
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from `input`, leaving the reader just past it.
    ///
    /// ```
    /// use flipcache::{FlipCodec, Reader};
    /// let mut input = Reader::new(&[2, b'h', b'i', 0xac, 0x02]);
    /// assert_eq!(String::decode(&mut input).unwrap(), "hi");
    /// assert_eq!(u32::decode(&mut input).unwrap(), 300);
    /// assert!(input.is_empty());
    /// ```
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The encoding of `value` (the body alone: no header, no fingerprint).
///
/// ```
/// assert_eq!(flipcache::to_bytes(&(1u8, -1i32, true)), [1, 1, 1]);
/// ```
pub fn to_bytes<T: FlipCodec>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity_hint(value));
    value.encode(&mut out);
    out
}

/// The capacity to start an output buffer with: the value's
/// [`encoded_len_hint`](FlipCodec::encoded_len_hint), within reason (a hint is not trusted
/// with a huge allocation; past the limit, the buffer grows as it fills).
#[inline]
fn capacity_hint<T: FlipCodec>(value: &T) -> usize {
    value.encoded_len_hint().clamp(16, 1 << 20)
}

/// Decodes exactly one `T` from `bytes`: trailing bytes are an error.
///
/// ```
/// use flipcache::from_bytes;
/// assert_eq!(from_bytes::<(u8, i32, bool)>(&[1, 1, 1]).unwrap(), (1, -1, true));
/// assert!(from_bytes::<u8>(&[1, 2]).is_err(), "trailing byte");
/// assert!(from_bytes::<bool>(&[2]).is_err(), "not a bool");
/// assert!(from_bytes::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(), "huge length");
/// ```
pub fn from_bytes<T: FlipCodec>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut input = Reader::new(bytes);
    // Matching on the result (rather than `?` and `Ok(value)`) lets it be returned in place.
    match T::decode(&mut input) {
        Ok(_) if !input.is_empty() => Err(input.trailing()),
        result => result,
    }
}

#[cfg(test)]
mod tests;
