//! The envelope a [`FlipCodec`] value is stored in when it is a cache value: a format byte
//! and the type's fingerprint before the body, so a value written by another version of the
//! type fails to decode instead of decoding as a wrong value.

use super::{DecodeError, FlipCodec, Reader};

/// The first byte of a stored FlipCodec value (format version 1). `0xFC` never occurs in
/// UTF-8, so a FlipCodec value is never mistaken for text or JSON, and vice versa.
pub const VALUE_HEADER: u8 = 0xFC;

/// Header length: the format byte and the 8-byte little-endian fingerprint.
const HEADER_LEN: usize = 9;

/// Appends `value` as a stored cache value: [`VALUE_HEADER`], `T::FINGERPRINT` (8 bytes,
/// little-endian), then the [`FlipCodec`] body. This is what the
/// [`FlipValue`](crate::FlipValue) impl of a `#[derive(FlipCodec)]` type writes to Redis.
///
/// ```
/// use flipcache::flipcodec::{encode_value, VALUE_HEADER};
/// use flipcache::FlipCodec;
/// let mut out = Vec::new();
/// encode_value(&5u32, &mut out);
/// assert_eq!(out[0], VALUE_HEADER);
/// assert_eq!(out[1..9], u32::FINGERPRINT.to_le_bytes());
/// assert_eq!(out[9..], [5]);
/// ```
pub fn encode_value<T: FlipCodec>(value: &T, out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + super::capacity_hint(value));
    out.push(VALUE_HEADER);
    out.extend_from_slice(&T::FINGERPRINT.to_le_bytes());
    value.encode(out);
}

/// Decodes a stored cache value written by [`encode_value`]. Fails, naming `type_name`, if
/// the bytes are not a FlipCodec value, were written by a version of the type with another
/// fingerprint, or do not decode (including trailing bytes).
///
/// ```
/// use flipcache::flipcodec::{decode_value, encode_value};
/// let mut out = Vec::new();
/// encode_value(&5u32, &mut out);
/// assert_eq!(decode_value::<u32>(&out, "u32").unwrap(), 5);
///
/// let err = decode_value::<u64>(&out, "u64").unwrap_err();
/// assert!(err.to_string().contains("different version of `u64`"));
/// let err = decode_value::<u32>(b"{\"json\": 1}", "u32").unwrap_err();
/// assert!(err.to_string().contains("not a FlipCodec value"));
/// ```
pub fn decode_value<T: FlipCodec>(bytes: &[u8], type_name: &str) -> Result<T, DecodeError> {
    let (header, body) = match bytes.split_first_chunk::<HEADER_LEN>() {
        Some((header, body)) if header[0] == VALUE_HEADER => (header, body),
        _ => return Err(not_flipcodec(bytes, type_name)),
    };
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&header[1..]);
    let stored = u64::from_le_bytes(stored);
    if stored != T::FINGERPRINT {
        return Err(DecodeError::new(format!(
            "stored value was written by a different version of `{type_name}` (fingerprint \
             mismatch: stored {stored:#018x}, this build expects {:#018x})",
            T::FINGERPRINT
        )));
    }
    let mut input = Reader::new(body);
    match T::decode(&mut input) {
        Ok(_) if !input.is_empty() => Err(cannot_decode(type_name, input.trailing())),
        Err(e) => Err(cannot_decode(type_name, e)),
        ok => ok,
    }
}

#[cold]
fn cannot_decode(type_name: &str, e: DecodeError) -> DecodeError {
    DecodeError::new(format!("cannot decode `{type_name}`: {e}"))
}

#[cold]
fn not_flipcodec(bytes: &[u8], type_name: &str) -> DecodeError {
    let what = match bytes.first() {
        None => "it is empty".to_string(),
        Some(&VALUE_HEADER) => format!("its {}-byte header is truncated", bytes.len()),
        Some(b) => format!(
            "it starts with byte {b:#04x}, not the FlipCodec header {VALUE_HEADER:#04x}; \
             text or JSON written by another client?"
        ),
    };
    DecodeError::new(format!(
        "stored value is not a FlipCodec value of `{type_name}` ({what})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_every_kind_of_foreign_bytes() {
        let msg = |b: &[u8]| decode_value::<u32>(b, "Thing").unwrap_err().to_string();
        assert!(msg(b"").contains("it is empty"), "{}", msg(b""));
        assert!(msg(&[VALUE_HEADER, 1, 2]).contains("truncated"));
        assert!(msg(b"16.38").contains("starts with byte 0x31"));

        let mut out = Vec::new();
        encode_value(&300u32, &mut out);
        out.push(0);
        let m = msg(&out);
        assert!(
            m.contains("cannot decode `Thing`") && m.contains("trailing"),
            "{m}"
        );
        out.truncate(out.len() - 2);
        assert!(msg(&out).contains("end of input"));
    }
}
