//! LEB128 varints (the writing half; [`Reader`](super::Reader) reads them) and zigzag
//! mapping for signed integers.

/// Appends `v` as an unsigned LEB128 varint: 7 bits per byte, low bits first, the high bit
/// set on every byte but the last. Values below 128 take one byte.
#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[(v as u8) | 0x80, (v >> 7) as u8]);
    } else {
        write_u64_long(out, v);
    }
}

/// [`write_u64`] for values of 3 bytes and more. Byte by byte: copying a buffer's first
/// `len` bytes would call `memcpy`, which costs more than the loop.
#[inline(never)]
fn write_u64_long(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// [`write_u64`] for 128-bit values (at most 19 bytes).
pub(crate) fn write_u128(out: &mut Vec<u8>, mut v: u128) {
    let mut buf = [0u8; 19];
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    out.extend_from_slice(&buf[..=i]);
}

/// Zigzag: 0, -1, 1, -2, ... become 0, 1, 2, 3, ..., so small negative numbers stay short.
#[inline]
pub(crate) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

pub(crate) fn unzigzag128(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flipcodec::Reader;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_u64(&mut out, v);
        out
    }

    #[test]
    fn leb128_layout() {
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
        assert_eq!(*enc(u64::MAX).last().unwrap(), 1);
    }

    #[test]
    fn round_trips_at_every_width() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let bytes = enc(v);
                let mut r = Reader::new(&bytes);
                assert_eq!(r.read_varint_u64().unwrap(), v);
                assert!(r.is_empty());
            }
        }
        for shift in 0..128 {
            let v = 1u128 << shift;
            let mut out = Vec::new();
            write_u128(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.read_varint_u128().unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn rejects_overflow_overlong_and_truncation() {
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert!(Reader::new(&overflow).read_varint_u64().is_err());
        assert!(Reader::new(&[0xff; 11]).read_varint_u64().is_err());
        assert!(Reader::new(&[0x80, 0x00]).read_varint_u64().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x00]).read_varint_u64().is_err());
        assert!(
            Reader::new(&[0xff, 0x80, 0x00, 0x01])
                .read_varint_u64()
                .is_err()
        );
        assert!(Reader::new(&[0x80, 0x80]).read_varint_u64().is_err());
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0x7f]).read_varint_u64().unwrap(),
            (1 << 21) - 1
        );
        assert!(Reader::new(&[0x80]).read_varint_u64().is_err());
        let mut overflow128 = vec![0xff; 18];
        overflow128.push(0x04);
        assert!(Reader::new(&overflow128).read_varint_u128().is_err());
        let mut max128 = vec![0xff; 18];
        max128.push(0x03);
        assert_eq!(Reader::new(&max128).read_varint_u128().unwrap(), u128::MAX);
    }

    #[test]
    fn zigzag_is_a_bijection_on_edges() {
        for v in [0i64, -1, 1, -2, 2, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag64(zigzag64(v)), v);
        }
        assert_eq!(zigzag64(-1), 1);
        assert_eq!(zigzag64(1), 2);
        for v in [0i128, -1, 1, i128::MIN, i128::MAX] {
            assert_eq!(unzigzag128(zigzag128(v)), v);
        }
    }
}
