//! [`Reader`], the bounds-checked cursor decoding reads from, and [`DecodeError`].

use std::borrow::Cow;
use std::fmt;

use super::FlipCodec;

/// How deep derived types may nest while decoding (a guard against stack overflow on hostile
/// input such as a million nested `Some(Box(...))`).
pub const MAX_DEPTH: u32 = 256;

/// How many bytes of memory elements that take no input bytes (such as `()`, or a struct whose
/// fields are all skipped) may add up to in one decode. Every other element consumes input,
/// so its count is bounded by the input length.
pub const ZERO_WIDTH_BUDGET: usize = 16 << 20;

/// Preallocations never exceed this many bytes of memory per byte of remaining input.
const PREALLOC_PER_INPUT_BYTE: usize = 32;

/// Why bytes could not be decoded: truncated input, an invalid value, trailing bytes, or a
/// value written by another version of the type.
///
/// ```
/// use flipcache::{from_bytes, DecodeError};
/// let err: DecodeError = from_bytes::<u32>(&[]).unwrap_err();
/// assert!(err.to_string().contains("end of input"));
/// let custom = DecodeError::new("not a valid email address");
/// assert_eq!(custom.message(), "not a valid email address");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DecodeError {
    // Boxed so that the error is one pointer wide: `Result<u64, DecodeError>` then fits in two
    // registers, which matters on the hot decoding paths (errors are cold and may allocate).
    message: Box<Cow<'static, str>>,
}

impl DecodeError {
    /// An error with this message; what a [`with`](crate::FlipCodec#field-attributes) decoder
    /// or a hand-written impl returns for an invalid value.
    ///
    /// ```
    /// let e = flipcache::DecodeError::new(format!("{} is not even", 3));
    /// assert_eq!(e.to_string(), "3 is not even");
    /// ```
    #[cold]
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: Box::new(message.into()),
        }
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(flipcache::DecodeError::new("bad").message(), "bad");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DecodeError").field(&self.message).finish()
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over the bytes being decoded: every read is bounds-checked and fails with a
/// [`DecodeError`] instead of panicking or reading past the end.
///
/// [`FlipCodec::decode`] takes one; hand-written impls and
/// [`with`](crate::FlipCodec#field-attributes) decoders read through it, usually by calling
/// other types' `decode`.
///
/// ```
/// use flipcache::{FlipCodec, Reader};
/// let mut r = Reader::new(&[7, 1, 2, 3]);
/// assert_eq!(u32::decode(&mut r).unwrap(), 7);
/// assert_eq!(r.read_byte().unwrap(), 1);
/// assert_eq!(r.read_bytes(2).unwrap(), &[2, 3]);
/// assert!(r.read_byte().is_err());
/// assert!(r.finish().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
    total: usize,
    depth: u32,
    zero_width_left: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    ///
    /// ```
    /// let r = flipcache::Reader::new(b"abc");
    /// assert_eq!(r.remaining(), 3);
    /// ```
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            total: bytes.len(),
            depth: 0,
            zero_width_left: ZERO_WIDTH_BUDGET,
        }
    }

    /// How many bytes are left.
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(b"abc");
    /// r.read_byte().unwrap();
    /// assert_eq!(r.remaining(), 2);
    /// ```
    #[inline]
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// How many bytes were read so far (the offset errors report).
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(b"abc");
    /// r.read_bytes(2).unwrap();
    /// assert_eq!(r.position(), 2);
    /// ```
    #[inline]
    pub fn position(&self) -> usize {
        self.total - self.rest.len()
    }

    /// Whether every byte was read.
    ///
    /// ```
    /// let r = flipcache::Reader::new(b"");
    /// assert!(r.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// An error for the current position: `"{message} at byte {position}"`.
    ///
    /// ```
    /// let r = flipcache::Reader::new(b"abc");
    /// assert_eq!(r.error("bad tag").to_string(), "bad tag at byte 0");
    /// ```
    #[cold]
    pub fn error(&self, message: impl fmt::Display) -> DecodeError {
        DecodeError::new(format!("{message} at byte {}", self.position()))
    }

    #[cold]
    fn eof(&self, needed: usize) -> DecodeError {
        DecodeError::new(format!(
            "unexpected end of input at byte {}: needed {needed} more bytes, {} left",
            self.position(),
            self.rest.len()
        ))
    }

    /// Reads one byte.
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(&[9]);
    /// assert_eq!(r.read_byte().unwrap(), 9);
    /// assert!(r.read_byte().is_err());
    /// ```
    #[inline]
    pub fn read_byte(&mut self) -> Result<u8, DecodeError> {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                Ok(b)
            }
            None => Err(self.eof(1)),
        }
    }

    /// Reads `n` bytes, borrowed from the input.
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(b"abc");
    /// assert_eq!(r.read_bytes(2).unwrap(), b"ab");
    /// assert!(r.read_bytes(2).is_err());
    /// assert_eq!(r.remaining(), 1, "a failed read consumes nothing");
    /// ```
    #[inline]
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(self.eof(n));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// Reads exactly `N` bytes into an array.
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(&[1, 0, 0, 0]);
    /// assert_eq!(u32::from_le_bytes(r.read_array().unwrap()), 1);
    /// ```
    #[inline]
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.rest = rest;
                Ok(*head)
            }
            None => Err(self.eof(N)),
        }
    }

    /// Reads an unsigned LEB128 varint of at most 64 bits. Rejects overlong encodings (a
    /// final `0x00` byte after the first) and values that overflow `u64`, so every value has
    /// exactly one encoding.
    #[inline]
    pub(crate) fn read_varint_u64(&mut self) -> Result<u64, DecodeError> {
        // Up to three bytes (values up to 2^21, which covers lengths and most decimal floats)
        // without a loop. A final 0x00 byte after the first would be overlong: the slow path
        // rejects it.
        match *self.rest {
            [b0, ref rest @ ..] if b0 < 0x80 => {
                self.rest = rest;
                Ok(u64::from(b0))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 && b1 != 0 => {
                self.rest = rest;
                Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
            }
            [b0, b1, b2, ref rest @ ..] if b1 >= 0x80 && b2 < 0x80 && b2 != 0 => {
                self.rest = rest;
                Ok(u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7) | (u64::from(b2) << 14))
            }
            _ => self.read_varint_u64_slow(),
        }
    }

    /// [`read_varint_u64`](Self::read_varint_u64) for 4 bytes and more, and for errors.
    #[inline(never)]
    fn read_varint_u64_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (i, &b) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(self.error("varint overflows 64 bits"));
                }
                if b == 0 && i > 0 {
                    return Err(self.error("overlong varint"));
                }
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() < 10 {
            Err(self.eof(self.rest.len() + 1))
        } else {
            Err(self.error("varint overflows 64 bits"))
        }
    }

    /// Reads an unsigned LEB128 varint of at most 128 bits (canonical, like
    /// [`read_varint_u64`](Self::read_varint_u64)).
    pub(crate) fn read_varint_u128(&mut self) -> Result<u128, DecodeError> {
        let start = self.rest;
        let mut value = 0u128;
        for i in 0..19 {
            let b = self.read_byte()?;
            if i == 18 && b > 3 {
                self.rest = start;
                return Err(self.error("varint overflows 128 bits"));
            }
            value |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    self.rest = start;
                    return Err(self.error("overlong varint"));
                }
                return Ok(value);
            }
        }
        self.rest = start;
        Err(self.error("varint overflows 128 bits"))
    }

    /// Reads the length prefix of a sequence of `T`s, rejecting a length the remaining input
    /// cannot hold (each element takes at least [`FlipCodec::MIN_ENCODED_LEN`] bytes), so a
    /// huge prefix fails at once instead of after a long loop or a huge allocation.
    ///
    /// ```
    /// use flipcache::Reader;
    /// let mut r = Reader::new(&[3, 1, 2, 3]);
    /// assert_eq!(r.read_seq_len::<u32>().unwrap(), 3);
    /// let mut r = Reader::new(&[4, 1, 2, 3]);
    /// assert!(r.read_seq_len::<u32>().is_err(), "4 elements cannot fit in 3 bytes");
    /// ```
    #[inline]
    pub fn read_seq_len<T: FlipCodec>(&mut self) -> Result<usize, DecodeError> {
        let start = self.rest;
        let len = self.read_varint_u64()?;
        let fits = match T::MIN_ENCODED_LEN {
            0 => usize::try_from(len).ok(),
            min => usize::try_from(len)
                .ok()
                .filter(|&n| n <= self.rest.len() / min),
        };
        match fits {
            Some(len) => Ok(len),
            None => {
                let (left, min) = (self.rest.len(), T::MIN_ENCODED_LEN);
                self.rest = start;
                Err(self.error(format_args!(
                    "length prefix {len} is impossible: {left} bytes left and each element \
                     takes at least {min}"
                )))
            }
        }
    }

    /// How many `T`s to preallocate for a sequence of `len`: never more than the remaining
    /// input can justify (one element per input byte, and at most 32 bytes of memory per input
    /// byte), so hostile length prefixes cannot trigger a huge allocation.
    ///
    /// ```
    /// use flipcache::Reader;
    /// let r = Reader::new(&[0; 10]);
    /// assert_eq!(r.capacity_for::<u8>(3), 3);
    /// assert_eq!(r.capacity_for::<u8>(1_000_000), 10);
    /// assert_eq!(r.capacity_for::<[u8; 4096]>(10), 0);
    /// ```
    #[inline]
    pub fn capacity_for<T>(&self, len: usize) -> usize {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            // A `Vec` of zero-sized elements never allocates.
            return 0;
        }
        let left = self.rest.len();
        len.min(left)
            .min(left.saturating_mul(PREALLOC_PER_INPUT_BYTE) / size)
    }

    /// Decodes `len` `T`s in order, handing each to `sink`. Elements that take no input bytes
    /// count against a per-decode budget ([`ZERO_WIDTH_BUDGET`] bytes of memory), so a huge
    /// length prefix for `Vec<()>` fails instead of looping for hours.
    ///
    /// ```
    /// use flipcache::Reader;
    /// let mut r = Reader::new(&[1, 2, 3]);
    /// let mut sum = 0u32;
    /// r.decode_elements::<u32>(3, |x| { sum += x; Ok(()) }).unwrap();
    /// assert_eq!(sum, 6);
    /// ```
    #[inline]
    pub fn decode_elements<T: FlipCodec>(
        &mut self,
        len: usize,
        mut sink: impl FnMut(T) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if T::MIN_ENCODED_LEN > 0 {
            for _ in 0..len {
                sink(T::decode(self)?)?;
            }
        } else {
            for _ in 0..len {
                let before = self.rest.len();
                let value = T::decode(self)?;
                if self.rest.len() == before {
                    let cost = std::mem::size_of::<T>().max(1);
                    match self.zero_width_left.checked_sub(cost) {
                        Some(left) => self.zero_width_left = left,
                        None => {
                            return Err(self.error(format_args!(
                                "too many elements that take no input bytes (over {} bytes \
                                 of memory)",
                                ZERO_WIDTH_BUDGET
                            )));
                        }
                    }
                }
                sink(value)?;
            }
        }
        Ok(())
    }

    /// Runs `f` one nesting level deeper, failing if values nest more than [`MAX_DEPTH`]
    /// levels (derived types call this, so recursive types cannot overflow the stack).
    ///
    /// ```
    /// use flipcache::{FlipCodec, Reader};
    /// let mut r = Reader::new(&[5]);
    /// let v = r.nested(|r| u8::decode(r)).unwrap();
    /// assert_eq!(v, 5);
    /// ```
    #[inline]
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format_args!("values nest deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Checks that every byte was read: trailing bytes mean the input is not one value of the
    /// expected type.
    ///
    /// ```
    /// let mut r = flipcache::Reader::new(&[1, 2]);
    /// r.read_byte().unwrap();
    /// assert!(r.finish().is_err());
    /// ```
    #[inline]
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.trailing())
        }
    }

    /// The error for bytes left over after a value.
    #[cold]
    pub(crate) fn trailing(&self) -> DecodeError {
        self.error(format_args!("{} trailing bytes", self.rest.len()))
    }
}
