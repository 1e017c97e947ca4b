//! The `f64` encoding: short decimals (what JSON, forms and APIs produce: `4.1`, `19.99`,
//! `52.520008`) as a small integer and a count of decimal places, everything else as the raw
//! 8 bytes. Bit-exact either way: the decimal form is only written after checking that
//! decoding it gives back the very same bits.
//!
//! One LEB128 varint `h` comes first:
//! - `h & 7 == k < 7`: the value is `m / 10^k`, where `m` is the zigzag-decoded `h >> 3`
//!   and `|m| < 2^53`. Both `m` and `10^k` are exact doubles, so the IEEE division is
//!   correctly rounded and the same on every platform: `41 / 10` is exactly the double `4.1`.
//! - `h == 7`: the 8 little-endian IEEE 754 bytes follow (NaN, infinities, `-0.0`, full
//!   precision results such as `4.1 * 3.4`), 9 bytes in all.

use super::varint::{self, unzigzag64, zigzag64};
use super::{DecodeError, Reader};

/// `10^k` for `k` decimal places, at most 6.
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// The tag of a raw float.
const RAW: u64 = 7;
/// Integers below this are exact doubles.
const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

// Always inlined, like `decode_f64`: it is on the hot path of every float.
#[inline(always)]
pub(crate) fn encode_f64(x: f64, out: &mut Vec<u8>) {
    match decimal(x) {
        Some(h) => varint::write_u64(out, h),
        None => {
            let mut buf = [0u8; 9];
            buf[0] = RAW as u8;
            buf[1..].copy_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&buf);
        }
    }
}

/// The decimal form of `x`, if it has one with at most 6 decimal places.
///
/// One multiplication finds the candidate: `x * 10^6` must be within 0.01 of an integer
/// (which cheaply rejects full-precision values); that integer's trailing zeros give the
/// fewest decimal places (tested with constant divisors, fewest places first), and one
/// division checks that `m / 10^k` decodes to exactly `x`. A value this misses (say, a huge
/// number with decimals) is simply stored raw.
///
/// This is the fast path, for `|x * 10^6| < 2^51` (all but huge values, NaN and infinities);
/// [`decimal_slow`] takes the rest, and gives the same answers (tested).
#[inline]
fn decimal(x: f64) -> Option<u64> {
    let y = x * 1e6;
    if y.is_nan() || y.abs() >= FAST {
        return decimal_slow(x);
    }
    // Round to the nearest integer with the magic-number trick: for `|y| < 2^51`,
    // `1.5 * 2^52 + y` lies in [2^52, 2^53], where doubles are the integers, so the sum is `y`
    // rounded (ties to even, where `decimal_slow` rounds them away from zero: a tie is 0.5
    // away from `y` and both reject it), and its 52 mantissa bits hold `2^51 + scaled`. (The
    // sum is 2^53, whose mantissa bits are 0, only if `y` rounds up to 2^51, from at least
    // 0.25 below: rejected too.) This is shorter than a conversion to an integer and back.
    let sum = y + ROUNDER;
    let rounded = sum - ROUNDER;
    if (y - rounded).abs() > 0.01 {
        return None;
    }
    // The check that the candidate decodes to `x`, early: `rounded / 10^6` is the same
    // rational number as `m / 10^k` below, both operands are exact doubles, and IEEE division
    // is correctly rounded, so the quotients are the same double. Here the division need not
    // wait for the trailing zeros to be stripped.
    if (rounded / 1e6).to_bits() != x.to_bits() {
        return None;
    }
    let scaled = (sum.to_bits() & ((1 << 52) - 1)) as i64 - (1 << 51);
    let (m, k) = strip(scaled);
    Some((zigzag64(m) << 3) | k as u64)
}

/// `1.5 * 2^52`, see [`decimal`].
const ROUNDER: f64 = 6_755_399_441_055_744.0;
/// The fast path of [`decimal`] takes `|x * 10^6|` below this.
const FAST: f64 = 2_251_799_813_685_248.0; // 2^51

/// `scaled / 10^(6 - k)` and `k`, for the fewest decimal places `k` (at most 6) that leave
/// no remainder.
#[inline(always)]
fn strip(scaled: i64) -> (i64, usize) {
    let a = scaled.unsigned_abs();
    let (a, k) = if a.is_multiple_of(1_000_000) {
        (a / 1_000_000, 0)
    } else if a.is_multiple_of(100_000) {
        (a / 100_000, 1)
    } else if a.is_multiple_of(10_000) {
        (a / 10_000, 2)
    } else if a.is_multiple_of(1_000) {
        (a / 1_000, 3)
    } else if a.is_multiple_of(100) {
        (a / 100, 4)
    } else if a.is_multiple_of(10) {
        (a / 10, 5)
    } else {
        (a, 6)
    };
    // `a < 2^53`, so the conversion is exact.
    (if scaled < 0 { -(a as i64) } else { a as i64 }, k)
}

/// [`decimal`] for any `x`.
#[cold]
fn decimal_slow(x: f64) -> Option<u64> {
    let y = x * 1e6;
    if y.is_nan() || y.abs() >= EXACT {
        // Too large for 6 places (or NaN, or infinite): whole numbers only.
        if x.is_nan() || x.abs() >= EXACT {
            return None;
        }
        let m = x as i64;
        return ((m as f64).to_bits() == x.to_bits()).then(|| zigzag64(m) << 3);
    }
    let scaled = (y + 0.5f64.copysign(y)) as i64;
    if (y - scaled as f64).abs() > 0.01 {
        return None;
    }
    let (m, k) = strip(scaled);
    // `m < 2^53`, so the conversion is exact.
    let back = match k {
        0 => m as f64,
        _ => m as f64 / POW10[k],
    };
    (back.to_bits() == x.to_bits()).then(|| (zigzag64(m) << 3) | k as u64)
}

// Always inlined: small, and a call would return the `Result` through memory.
#[inline(always)]
pub(crate) fn decode_f64(input: &mut Reader<'_>) -> Result<f64, DecodeError> {
    let h = input.read_varint_u64()?;
    let k = (h & 7) as usize;
    let m = unzigzag64(h >> 3);
    if k == RAW as usize {
        return if h == RAW {
            input.read_array().map(f64::from_le_bytes)
        } else {
            Err(invalid(input, format_args!("invalid float tag {h:#x}")))
        };
    }
    if m.unsigned_abs() >= 1 << 53 {
        return Err(invalid(
            input,
            format_args!("decimal float mantissa {m} is not exact"),
        ));
    }
    // `m` and `10^k` are exact doubles, so this is the correctly rounded quotient (and
    // `m / 1.0` is `m`).
    Ok(m as f64 / POW10[k])
}

#[cold]
#[inline(never)]
fn invalid(input: &Reader<'_>, message: std::fmt::Arguments<'_>) -> DecodeError {
    input.error(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flipcodec::{from_bytes, to_bytes};

    fn len(x: f64) -> usize {
        let bytes = to_bytes(&x);
        let back: f64 = from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bits(), x.to_bits(), "{x:?}");
        bytes.len()
    }

    #[test]
    fn short_decimals_are_short() {
        assert_eq!(len(0.0), 1);
        assert_eq!(len(6.0), 1);
        assert_eq!(len(4.1), 2);
        assert_eq!(len(3.4), 2);
        assert_eq!(len(16.38), 3);
        assert_eq!(len(-19.99), 3);
        assert_eq!(len(0.000001), 1);
        assert_eq!(len(52.520008), 5);
        assert_eq!(len(1e15), 8);
    }

    #[test]
    fn everything_else_is_raw_and_bit_exact() {
        for x in [
            -0.0,
            4.1 * 3.4,
            0.1 + 0.2,
            1.0 / 3.0,
            1e300,
            -1e-300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            9_007_199_254_740_993.0,
            0.0000001,
        ] {
            assert_eq!(len(x), 9, "{x:?}");
        }
    }

    #[test]
    fn every_short_decimal_round_trips() {
        // All two-decimal values in [-100, 100], and a sweep of larger magnitudes.
        for cents in -10_000i64..=10_000 {
            let x: f64 = format!("{}.{:02}", cents / 100, (cents % 100).abs())
                .parse()
                .unwrap();
            assert!(len(x) <= 4, "{x}");
        }
        let mut x = 1.234567;
        for _ in 0..40 {
            len(x);
            len(-x);
            x *= 7.0;
        }
    }

    #[test]
    fn decimals_up_to_six_places_are_found() {
        // xorshift, so the test needs no dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..100_000 {
            let k = (next() % 7) as i32;
            // Up to 12 significant digits, as in `123456.123456`.
            let m = (next() % 1_000_000_000_000) as i64 / 10i64.pow(6 - k as u32);
            let m = if next() % 2 == 0 { m } else { -m };
            let x: f64 = format!("{m}e-{k}").parse().unwrap();
            let size = len(x);
            assert!(size < 9, "{x} ({m}e-{k}) took {size} bytes");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_slow_path() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let check = |x: f64| assert_eq!(decimal(x), decimal_slow(x), "{x:?}");
        for _ in 0..200_000 {
            // Short decimals of every size, their neighbours, and arbitrary bit patterns.
            let k = (next() % 8) as i32;
            let m = (next() >> (next() % 64)) as i64;
            let x: f64 = format!("{m}e-{k}").parse().unwrap();
            check(x);
            check(-x);
            check(f64::from_bits(x.to_bits() + 1));
            check(f64::from_bits(x.to_bits().saturating_sub(1)));
            check(f64::from_bits(next()));
            check(x / 7.0);
        }
        for x in [
            0.0,
            -0.0,
            0.5e-6,
            -0.5e-6,
            1.5e-6,
            2.5e-6,
            0.01,
            2_251_799_813.685247,
            2_251_799_813.685248,
            -2_251_799_813.685247,
            9_007_199_254.740991,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ] {
            check(x);
        }
    }

    #[test]
    fn rejects_invalid_tags_and_inexact_mantissas() {
        assert!(from_bytes::<f64>(&to_bytes(&15u64)).is_err());
        let inexact = (zigzag64(1 << 53) << 3) | 1;
        assert!(from_bytes::<f64>(&to_bytes(&inexact)).is_err());
        assert!(from_bytes::<f64>(&[7, 0, 0]).is_err());
    }
}
