//! [`FlipCodec`] for std types: integers, floats, `bool`, `char`, strings, collections,
//! smart pointers, tuples, arrays and `Duration`.
//!
//! Std types fingerprint their wire schema (containers mix in their elements' fingerprints),
//! so a generic derived type stored as `Wrapper<u32>` and later read as `Wrapper<String>`
//! is caught by the value header.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::float;
use super::varint::{self, unzigzag64, unzigzag128, zigzag64, zigzag128};
use super::{DecodeError, Fingerprint, FlipCodec, Reader};

const fn named(name: &str) -> u64 {
    Fingerprint::new().str(name).finish()
}

const fn wraps(name: &str, inner: u64) -> u64 {
    Fingerprint::new().str(name).u64(inner).finish()
}

impl FlipCodec for u8 {
    const FINGERPRINT: u64 = named("u8");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.read_byte()
    }
}

impl FlipCodec for i8 {
    const FINGERPRINT: u64 = named("i8");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.read_byte().map(|b| b as i8)
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl FlipCodec for $t {
            const FINGERPRINT: u64 = named(stringify!($t));
            const MIN_ENCODED_LEN: usize = 1;
            #[inline]
            fn encoded_len_hint(&self) -> usize {
                // The longest varint of the type (a constant, so sequences of it are cheap).
                (<$t>::BITS as usize).div_ceil(7)
            }
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                varint::write_u64(out, *self as u64);
            }
            #[inline]
            fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let v = input.read_varint_u64()?;
                <$t>::try_from(v).map_err(|_| {
                    input.error(format_args!("{v} is out of range for {}", stringify!($t)))
                })
            }
        }
    )*};
}
unsigned!(u16, u32, u64, usize);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl FlipCodec for $t {
            const FINGERPRINT: u64 = named(stringify!($t));
            const MIN_ENCODED_LEN: usize = 1;
            #[inline]
            fn encoded_len_hint(&self) -> usize {
                // The longest varint of the type (a constant, so sequences of it are cheap).
                (<$t>::BITS as usize).div_ceil(7)
            }
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                varint::write_u64(out, zigzag64(*self as i64));
            }
            #[inline]
            fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let v = unzigzag64(input.read_varint_u64()?);
                <$t>::try_from(v).map_err(|_| {
                    input.error(format_args!("{v} is out of range for {}", stringify!($t)))
                })
            }
        }
    )*};
}
signed!(i16, i32, i64, isize);

impl FlipCodec for u128 {
    const FINGERPRINT: u64 = named("u128");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        19
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u128(out, *self);
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.read_varint_u128()
    }
}

impl FlipCodec for i128 {
    const FINGERPRINT: u64 = named("i128");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        19
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u128(out, zigzag128(*self));
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.read_varint_u128().map(unzigzag128)
    }
}

impl FlipCodec for f32 {
    const FINGERPRINT: u64 = named("f32");
    const MIN_ENCODED_LEN: usize = 4;
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        input.read_array().map(f32::from_le_bytes)
    }
}

impl FlipCodec for f64 {
    const FINGERPRINT: u64 = named("f64");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        // The longest form: a raw float.
        9
    }
    #[inline(always)]
    fn encode(&self, out: &mut Vec<u8>) {
        float::encode_f64(*self, out);
    }
    #[inline(always)]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        float::decode_f64(input)
    }
}

impl FlipCodec for bool {
    const FINGERPRINT: u64 = named("bool");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match input.read_byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(input.error(format_args!("invalid bool byte {b:#04x}"))),
        }
    }
}

impl FlipCodec for char {
    const FINGERPRINT: u64 = named("char");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        3
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, u64::from(*self));
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let v = input.read_varint_u64()?;
        u32::try_from(v)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| input.error(format_args!("{v:#x} is not a char")))
    }
}

impl FlipCodec for () {
    const FINGERPRINT: u64 = named("()");
    #[inline]
    fn encode(&self, _out: &mut Vec<u8>) {}
    #[inline]
    fn decode(_input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl<T: ?Sized> FlipCodec for PhantomData<T> {
    const FINGERPRINT: u64 = named("PhantomData");
    #[inline]
    fn encode(&self, _out: &mut Vec<u8>) {}
    #[inline]
    fn decode(_input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PhantomData)
    }
}

impl FlipCodec for Duration {
    const FINGERPRINT: u64 = named("Duration");
    const MIN_ENCODED_LEN: usize = 2;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        15
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.as_secs());
        varint::write_u64(out, u64::from(self.subsec_nanos()));
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let secs = input.read_varint_u64()?;
        let nanos = input.read_varint_u64()?;
        match u32::try_from(nanos) {
            // Below a second of nanoseconds, `Duration::new` cannot carry and overflow.
            Ok(nanos) if nanos < 1_000_000_000 => Ok(Duration::new(secs, nanos)),
            _ => Err(input.error(format_args!("{nanos} is not a valid nanosecond count"))),
        }
    }
}

/// The longest length prefix of `len`: 1 byte below 128, and 10 (a `u64` varint's most)
/// beyond, which is cheaper to compute than the exact length and close enough.
#[inline]
fn prefix_len_hint(len: usize) -> usize {
    if len < 0x80 { 1 } else { 10 }
}

/// [`FlipCodec::encoded_len_hint`] of a string.
#[inline]
fn str_len_hint(s: &str) -> usize {
    prefix_len_hint(s.len()).saturating_add(s.len())
}

/// [`FlipCodec::encoded_len_hint`] of a map: its length prefix and its entries' hints.
#[inline]
fn map_len_hint<'a, K: FlipCodec + 'a, V: FlipCodec + 'a>(
    len: usize,
    entries: impl Iterator<Item = (&'a K, &'a V)>,
) -> usize {
    seq_len_hint(
        len,
        entries.map(|(k, v)| k.encoded_len_hint().saturating_add(v.encoded_len_hint())),
    )
}

/// [`FlipCodec::encoded_len_hint`] of a sequence: its length prefix and its elements' hints.
#[inline]
fn seq_len_hint(len: usize, hints: impl Iterator<Item = usize>) -> usize {
    hints.fold(prefix_len_hint(len), usize::saturating_add)
}

#[inline]
fn encode_str(s: &str, out: &mut Vec<u8>) {
    varint::write_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[inline]
fn decode_str<'a>(input: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let len = input.read_seq_len::<u8>()?;
    let start = input.position();
    let bytes = input.read_bytes(len)?;
    std::str::from_utf8(bytes).map_err(|e| invalid_utf8(start, e))
}

#[cold]
fn invalid_utf8(start: usize, e: std::str::Utf8Error) -> DecodeError {
    DecodeError::new(format!("invalid UTF-8 in string at byte {start}: {e}"))
}

impl FlipCodec for String {
    const FINGERPRINT: u64 = named("str");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        str_len_hint(self)
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_str(input).map(str::to_owned)
    }
}

impl FlipCodec for Box<str> {
    const FINGERPRINT: u64 = named("str");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        str_len_hint(self)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_str(input).map(Into::into)
    }
}

impl FlipCodec for Arc<str> {
    const FINGERPRINT: u64 = named("str");
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        str_len_hint(self)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_str(self, out);
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_str(input).map(Into::into)
    }
}

impl<T: FlipCodec> FlipCodec for Option<T> {
    const FINGERPRINT: u64 = wraps("Option", T::FINGERPRINT);
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        match self {
            None => 1,
            Some(v) => v.encoded_len_hint().saturating_add(1),
        }
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    #[inline]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match input.read_byte()? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            b => Err(input.error(format_args!("invalid Option tag {b:#04x}"))),
        }
    }
}

impl<T: FlipCodec, E: FlipCodec> FlipCodec for Result<T, E> {
    const FINGERPRINT: u64 = Fingerprint::new()
        .str("Result")
        .u64(T::FINGERPRINT)
        .u64(E::FINGERPRINT)
        .finish();
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        match self {
            Ok(v) => v.encoded_len_hint().saturating_add(1),
            Err(e) => e.encoded_len_hint().saturating_add(1),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                out.push(0);
                v.encode(out);
            }
            Err(e) => {
                out.push(1);
                e.encode(out);
            }
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match input.read_byte()? {
            0 => T::decode(input).map(Ok),
            1 => E::decode(input).map(Err),
            b => Err(input.error(format_args!("invalid Result tag {b:#04x}"))),
        }
    }
}

// Smart pointers are transparent: same bytes, same fingerprint as what they point to.
macro_rules! pointers {
    ($($p:ident),*) => {$(
        impl<T: FlipCodec> FlipCodec for $p<T> {
            const FINGERPRINT: u64 = T::FINGERPRINT;
            const MIN_ENCODED_LEN: usize = T::MIN_ENCODED_LEN;
            #[inline]
            fn encoded_len_hint(&self) -> usize {
                T::encoded_len_hint(self)
            }
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                T::encode(self, out);
            }
            #[inline]
            fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
                T::decode(input).map($p::new)
            }
        }
    )*};
}
pointers!(Box, Arc, Rc);

impl<T: FlipCodec> FlipCodec for Vec<T> {
    const FINGERPRINT: u64 = wraps("seq", T::FINGERPRINT);
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        seq_len_hint(self.len(), self.iter().map(T::encoded_len_hint))
    }
    // Always inlined: the loops are small, and a `Vec<f64>` field decoded by a call comes
    // back through memory (and `Vec<f64>` is often called from several places, where the
    // inliner gives up on it).
    #[inline(always)]
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for x in self {
            x.encode(out);
        }
    }
    #[inline(always)]
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<T>()?;
        let mut v = Vec::with_capacity(input.capacity_for::<T>(len));
        input.decode_elements(len, |x| {
            v.push(x);
            Ok(())
        })?;
        Ok(v)
    }
}

impl<T: FlipCodec> FlipCodec for VecDeque<T> {
    const FINGERPRINT: u64 = wraps("seq", T::FINGERPRINT);
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        seq_len_hint(self.len(), self.iter().map(T::encoded_len_hint))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for x in self {
            x.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<T>()?;
        let mut v = VecDeque::with_capacity(input.capacity_for::<T>(len));
        input.decode_elements(len, |x| {
            v.push_back(x);
            Ok(())
        })?;
        Ok(v)
    }
}

impl<T: FlipCodec, const N: usize> FlipCodec for [T; N] {
    const FINGERPRINT: u64 = Fingerprint::new()
        .str("array")
        .u64(N as u64)
        .u64(T::FINGERPRINT)
        .finish();
    const MIN_ENCODED_LEN: usize = T::MIN_ENCODED_LEN.saturating_mul(N);
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        self.iter()
            .map(T::encoded_len_hint)
            .fold(0, usize::saturating_add)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        for x in self {
            x.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if Self::MIN_ENCODED_LEN > input.remaining() {
            return Err(input.error(format_args!(
                "an array of {N} elements needs at least {} bytes, {} left",
                Self::MIN_ENCODED_LEN,
                input.remaining()
            )));
        }
        let mut v = Vec::with_capacity(input.capacity_for::<T>(N));
        input.decode_elements(N, |x| {
            v.push(x);
            Ok(())
        })?;
        // `decode_elements` pushed exactly N elements, so the conversion cannot fail.
        v.try_into()
            .map_err(|_| DecodeError::new("array length mismatch"))
    }
}

#[cold]
fn duplicate(what: &str) -> DecodeError {
    DecodeError::new(format!("duplicate {what}"))
}

impl<K, V, S> FlipCodec for HashMap<K, V, S>
where
    K: FlipCodec + Eq + Hash,
    V: FlipCodec,
    S: BuildHasher + Default,
{
    const FINGERPRINT: u64 = Fingerprint::new()
        .str("map")
        .u64(K::FINGERPRINT)
        .u64(V::FINGERPRINT)
        .finish();
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        map_len_hint(self.len(), self.iter())
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for (k, v) in self {
            k.encode(out);
            v.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<(K, V)>()?;
        let cap = input.capacity_for::<(K, V)>(len);
        let mut map = HashMap::with_capacity_and_hasher(cap, S::default());
        input.decode_elements(len, |(k, v)| match map.insert(k, v) {
            None => Ok(()),
            Some(_) => Err(duplicate("map key")),
        })?;
        Ok(map)
    }
}

impl<K: FlipCodec + Ord, V: FlipCodec> FlipCodec for BTreeMap<K, V> {
    const FINGERPRINT: u64 = Fingerprint::new()
        .str("map")
        .u64(K::FINGERPRINT)
        .u64(V::FINGERPRINT)
        .finish();
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        map_len_hint(self.len(), self.iter())
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for (k, v) in self {
            k.encode(out);
            v.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<(K, V)>()?;
        let mut map = BTreeMap::new();
        input.decode_elements(len, |(k, v)| match map.insert(k, v) {
            None => Ok(()),
            Some(_) => Err(duplicate("map key")),
        })?;
        Ok(map)
    }
}

impl<T, S> FlipCodec for HashSet<T, S>
where
    T: FlipCodec + Eq + Hash,
    S: BuildHasher + Default,
{
    const FINGERPRINT: u64 = wraps("set", T::FINGERPRINT);
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        seq_len_hint(self.len(), self.iter().map(T::encoded_len_hint))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for x in self {
            x.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<T>()?;
        let cap = input.capacity_for::<T>(len);
        let mut set = HashSet::with_capacity_and_hasher(cap, S::default());
        input.decode_elements(len, |x| {
            if set.insert(x) {
                Ok(())
            } else {
                Err(duplicate("set element"))
            }
        })?;
        Ok(set)
    }
}

impl<T: FlipCodec + Ord> FlipCodec for BTreeSet<T> {
    const FINGERPRINT: u64 = wraps("set", T::FINGERPRINT);
    const MIN_ENCODED_LEN: usize = 1;
    #[inline]
    fn encoded_len_hint(&self) -> usize {
        seq_len_hint(self.len(), self.iter().map(T::encoded_len_hint))
    }
    fn encode(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.len() as u64);
        for x in self {
            x.encode(out);
        }
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = input.read_seq_len::<T>()?;
        let mut set = BTreeSet::new();
        input.decode_elements(len, |x| {
            if set.insert(x) {
                Ok(())
            } else {
                Err(duplicate("set element"))
            }
        })?;
        Ok(set)
    }
}

macro_rules! tuples {
    ($( ($($name:ident $idx:tt),+) )+) => {$(
        impl<$($name: FlipCodec),+> FlipCodec for ($($name,)+) {
            const FINGERPRINT: u64 = Fingerprint::new()
                .str("tuple")
                $(.u64($name::FINGERPRINT))+
                .finish();
            const MIN_ENCODED_LEN: usize = 0usize $(.saturating_add($name::MIN_ENCODED_LEN))+;
            #[inline]
            fn encoded_len_hint(&self) -> usize {
                0usize $(.saturating_add(self.$idx.encoded_len_hint()))+
            }
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$idx.encode(out);)+
            }
            #[inline]
            fn decode(input: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    )+};
}
tuples! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11)
}
