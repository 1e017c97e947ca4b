//! The helpers `#[derive(FlipCodec)]` expansions call (through `flipcache::__private01`); not
//! a public API.

use super::{DecodeError, FlipCodec, Reader, envelope, varint};

/// Writes an enum variant's index.
#[inline]
pub fn write_variant(out: &mut Vec<u8>, index: u64) {
    varint::write_u64(out, index);
}

/// Reads an enum variant's index.
#[inline]
pub fn read_variant(input: &mut Reader<'_>) -> Result<u64, DecodeError> {
    input.read_varint_u64()
}

/// The error for a variant index the enum does not have.
#[cold]
pub fn unknown_variant(input: &Reader<'_>, type_name: &str, index: u64) -> DecodeError {
    input.error(format_args!(
        "unknown variant index {index} for enum `{type_name}`"
    ))
}

/// [`FlipValue::encode_value`](crate::FlipValue::encode_value) of a derived type.
#[inline]
pub fn encode_value<T: FlipCodec>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    envelope::encode_value(value, out);
    Ok(())
}

/// [`FlipValue::decode_value`](crate::FlipValue::decode_value) of a derived type.
#[inline]
pub fn decode_value<T: FlipCodec>(bytes: &[u8], type_name: &str) -> Result<T, String> {
    envelope::decode_value(bytes, type_name).map_err(|e| e.to_string())
}
