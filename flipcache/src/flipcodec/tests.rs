use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn round_trip<T: FlipCodec + PartialEq + Debug>(v: T) -> Vec<u8> {
    let bytes = to_bytes(&v);
    // The std types' hints are upper bounds, so `to_bytes` never grows its buffer.
    assert!(
        v.encoded_len_hint() >= bytes.len(),
        "{v:?}: hint {} < {} bytes",
        v.encoded_len_hint(),
        bytes.len()
    );
    let back: T = from_bytes(&bytes).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    assert_eq!(back, v);
    // A truncated encoding never decodes.
    if !bytes.is_empty() {
        assert!(from_bytes::<T>(&bytes[..bytes.len() - 1]).is_err(), "{v:?}");
    }
    bytes
}

#[test]
fn integers_at_their_edges() {
    macro_rules! edges {
        ($($t:ty),*) => {$(
            for v in [<$t>::MIN, <$t>::MAX, 0, 1, 63, 64, 127, <$t>::MAX / 2] {
                round_trip(v);
            }
        )*};
    }
    edges!(
        u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
    );
    assert_eq!(to_bytes(&-1i64), [1]);
    assert_eq!(to_bytes(&1i64), [2]);
    assert_eq!(to_bytes(&200u8), [200]);
    assert_eq!(to_bytes(&-2i8), [0xfe]);
    assert_eq!(to_bytes(&u64::MAX).len(), 10);
    assert_eq!(to_bytes(&i128::MIN).len(), 19);
}

#[test]
fn narrow_integers_reject_wide_varints() {
    let wide = to_bytes(&70_000u64);
    assert!(from_bytes::<u16>(&wide).is_err());
    assert_eq!(from_bytes::<u32>(&wide).unwrap(), 70_000);
    let neg = to_bytes(&-40_000i64);
    let err = from_bytes::<i16>(&neg).unwrap_err();
    assert!(err.to_string().contains("out of range for i16"), "{err}");
}

#[test]
fn floats_are_bit_exact() {
    for v in [
        -0.0f64,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        4.1 * 3.4,
    ] {
        assert_eq!(round_trip(v).len(), 9);
    }
    assert_eq!(round_trip(16.38f64).len(), 3);
    assert_eq!(round_trip(0.0f64).len(), 1);
    let nan = f64::from_bits(0x7ff8_dead_beef_0001);
    let back: f64 = from_bytes(&to_bytes(&nan)).unwrap();
    assert_eq!(back.to_bits(), nan.to_bits());
    assert_eq!(round_trip(1.5f32).len(), 4);
}

#[test]
fn bool_char_and_strings_validate() {
    round_trip(true);
    round_trip(false);
    assert!(from_bytes::<bool>(&[2]).is_err());
    for c in ['a', 'é', '\u{10FFFF}', '\0', '😀'] {
        round_trip(c);
    }
    // A surrogate is not a char; neither is anything above U+10FFFF.
    assert!(from_bytes::<char>(&to_bytes(&0xD800u32)).is_err());
    assert!(from_bytes::<char>(&to_bytes(&0x11_0000u32)).is_err());
    assert_eq!(round_trip(String::from("héllo")), b"\x06h\xc3\xa9llo");
    round_trip(String::new());
    round_trip(Box::<str>::from("boxed"));
    round_trip(Arc::<str>::from("shared"));
    let err = from_bytes::<String>(&[2, 0xff, 0xfe]).unwrap_err();
    assert!(err.to_string().contains("invalid UTF-8"), "{err}");
    assert!(from_bytes::<String>(&[5, b'a']).is_err());
}

#[test]
fn containers_round_trip() {
    round_trip(vec![1u32, 2, 300]);
    round_trip(Vec::<String>::new());
    round_trip(VecDeque::from([1i8, -1]));
    round_trip(Some(Box::new(5u8)));
    round_trip(None::<u8>);
    round_trip(Ok::<u8, String>(1));
    round_trip(Err::<u8, String>("no".into()));
    round_trip(Arc::new(vec![1u8]));
    round_trip(vec![Rc::new(1u8)]);
    round_trip([1u16, 2, 3]);
    round_trip([[0u8; 4]; 2]);
    round_trip(HashMap::from([
        ("a".to_string(), 1u8),
        ("b".to_string(), 2),
    ]));
    round_trip(BTreeMap::from([(1u8, vec![1.5f64])]));
    round_trip(HashSet::from([1u64, 1 << 40]));
    round_trip(BTreeSet::from(['x', 'y']));
    round_trip(Duration::new(5, 999_999_999));
    round_trip(((), PhantomData::<String>));
    round_trip((
        1u8,
        2u16,
        3u32,
        4u64,
        5i8,
        6i16,
        7i32,
        8i64,
        9.0f32,
        10.0f64,
        'k',
        "l".to_string(),
    ));
    let map: HashMap<
        u32,
        u32,
        std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    > = HashMap::from_iter([(1, 2)]);
    round_trip(map);
}

#[test]
fn invalid_tags_and_duplicates_are_rejected() {
    assert!(from_bytes::<Option<u8>>(&[2, 0]).is_err());
    assert!(from_bytes::<Result<u8, u8>>(&[7, 0]).is_err());
    let err = from_bytes::<BTreeMap<u8, u8>>(&[2, 1, 1, 1, 2]).unwrap_err();
    assert!(err.to_string().contains("duplicate map key"), "{err}");
    assert!(from_bytes::<HashMap<u8, u8>>(&[2, 1, 1, 1, 2]).is_err());
    assert!(from_bytes::<HashSet<u8>>(&[2, 1, 1]).is_err());
    assert!(from_bytes::<BTreeSet<u8>>(&[2, 1, 1]).is_err());
    let mut bad_nanos = to_bytes(&1u64);
    bad_nanos.extend(to_bytes(&1_000_000_000u64));
    assert!(from_bytes::<Duration>(&bad_nanos).is_err());
    let mut max = to_bytes(&u64::MAX);
    max.extend(to_bytes(&999_999_999u64));
    assert_eq!(
        from_bytes::<Duration>(&max).unwrap(),
        Duration::new(u64::MAX, 999_999_999)
    );
}

#[test]
fn trailing_bytes_and_truncation_are_errors() {
    let err = from_bytes::<u8>(&[1, 2, 3]).unwrap_err();
    assert_eq!(err.to_string(), "2 trailing bytes at byte 1");
    let err = from_bytes::<f32>(&[1, 2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected end of input at byte 0: needed 4 more bytes, 2 left"
    );
    assert!(from_bytes::<()>(&[]).is_ok());
    assert!(from_bytes::<()>(&[0]).is_err());
}

#[test]
fn huge_length_prefixes_fail_fast() {
    let huge = to_bytes(&u64::MAX);
    let t = Instant::now();
    let err = from_bytes::<Vec<u64>>(&huge).unwrap_err();
    assert!(err.to_string().contains("length prefix"), "{err}");
    assert!(from_bytes::<String>(&huge).is_err());
    assert!(from_bytes::<HashMap<String, Vec<u8>>>(&huge).is_err());
    assert!(from_bytes::<Vec<[f64; 1000]>>(&[1, 0, 0]).is_err());
    // Elements that take no bytes are bounded by the zero-width budget, not by the prefix.
    let err = from_bytes::<Vec<()>>(&huge).unwrap_err();
    assert!(err.to_string().contains("take no input bytes"), "{err}");
    let mut nested = to_bytes(&100_000u64);
    for _ in 0..100_000 {
        nested.extend(to_bytes(&1_000_000u64));
    }
    assert!(from_bytes::<Vec<Vec<()>>>(&nested).is_err());
    assert!(from_bytes::<Vec<PhantomData<u8>>>(&huge).is_err());
    // Generous on purpose: a decoder that trusted these prefixes would run for hours or abort
    // on allocation; the bound only has to tell that apart from a fast failure on a loaded
    // 2-core CI machine running a debug build (5 s was exceeded there: 6.4 s).
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    // A legitimately long run of zero-width elements within the budget still decodes.
    assert_eq!(round_trip(vec![(); 100_000]).len(), 3);
    // Arrays check the remaining input before looping.
    assert!(from_bytes::<[u64; 4096]>(&[0; 16]).is_err());
}

#[test]
fn capacity_is_bounded_by_remaining_input() {
    let input = [0u8; 100];
    let r = Reader::new(&input);
    assert_eq!(r.capacity_for::<u64>(1_000_000), 100);
    assert_eq!(r.capacity_for::<[u8; 64]>(1_000_000), 50);
    assert_eq!(r.capacity_for::<()>(1_000_000), 0);
    assert_eq!(r.capacity_for::<u8>(7), 7);
}

#[test]
fn nesting_is_bounded() {
    let mut r = Reader::new(&[]);
    fn dive(r: &mut Reader<'_>, n: u32) -> Result<u32, DecodeError> {
        if n == 0 {
            Ok(0)
        } else {
            r.nested(|r| dive(r, n - 1)).map(|d| d + 1)
        }
    }
    assert_eq!(dive(&mut r, MAX_DEPTH).unwrap(), MAX_DEPTH);
    let err = dive(&mut r, MAX_DEPTH + 1).unwrap_err();
    assert!(err.to_string().contains("nest deeper"), "{err}");
    // The depth unwinds after an error.
    assert_eq!(dive(&mut r, MAX_DEPTH).unwrap(), MAX_DEPTH);
}

#[test]
fn fingerprints_describe_the_schema() {
    assert_ne!(u32::FINGERPRINT, u64::FINGERPRINT);
    assert_eq!(<Box<u32>>::FINGERPRINT, u32::FINGERPRINT);
    assert_eq!(<Vec<u8>>::FINGERPRINT, <VecDeque<u8>>::FINGERPRINT);
    assert_eq!(
        <HashMap<u8, u8>>::FINGERPRINT,
        <BTreeMap<u8, u8>>::FINGERPRINT
    );
    assert_ne!(<Vec<u8>>::FINGERPRINT, <Vec<u16>>::FINGERPRINT);
    assert_ne!(<[u8; 2]>::FINGERPRINT, <[u8; 3]>::FINGERPRINT);
    assert_ne!(<(u8, u16)>::FINGERPRINT, <(u16, u8)>::FINGERPRINT);
    assert_eq!(String::FINGERPRINT, <Arc<str>>::FINGERPRINT);
}

/// A small xorshift generator, so the garbage test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        buf.clear();
        let len = (rng.next() % 48) as usize;
        buf.extend((0..len).map(|_| rng.next() as u8));
        let _ = from_bytes::<u64>(&buf);
        let _ = from_bytes::<String>(&buf);
        let _ = from_bytes::<Vec<Option<(i32, char)>>>(&buf);
        let _ = from_bytes::<HashMap<String, Vec<f64>>>(&buf);
        let _ = from_bytes::<BTreeSet<Duration>>(&buf);
        let _ = from_bytes::<(u128, i128, [bool; 3], Result<(), u16>)>(&buf);
        let _ = decode_value::<Vec<u8>>(&buf, "bytes");
    }
}

#[test]
fn decode_errors_are_one_pointer_wide() {
    // So that the `Result`s of small decodes come back in registers.
    assert_eq!(
        std::mem::size_of::<DecodeError>(),
        std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<Result<u64, DecodeError>>(),
        2 * std::mem::size_of::<usize>()
    );
}

#[test]
fn hints_are_upper_bounds_at_the_edges() {
    for v in [0u64, 127, 128, u64::MAX] {
        assert!(v.encoded_len_hint() >= to_bytes(&v).len());
    }
    for v in [i64::MIN, -65, 64, i64::MAX] {
        assert!(v.encoded_len_hint() >= to_bytes(&v).len());
    }
    for len in [0, 127, 128, 20_000] {
        let s = "x".repeat(len);
        assert!(s.encoded_len_hint() >= to_bytes(&s).len());
        let v = vec![0.1f64 / 3.0; len];
        assert!(v.encoded_len_hint() >= to_bytes(&v).len());
    }
    assert!('\u{10FFFF}'.encoded_len_hint() >= to_bytes(&'\u{10FFFF}').len());
    assert!(u128::MAX.encoded_len_hint() >= to_bytes(&u128::MAX).len());
    assert!(i128::MIN.encoded_len_hint() >= to_bytes(&i128::MIN).len());
    let d = Duration::new(u64::MAX, 999_999_999);
    assert!(d.encoded_len_hint() >= to_bytes(&d).len());
}

#[test]
fn strings_are_validated_past_an_ascii_prefix() {
    // Invalid UTF-8 anywhere, after an ASCII prefix too, is an error.
    for bad in [
        &b"abc\xff"[..],
        b"\xc0\x80",
        b"abcdefgh\x80",
        b"\xed\xa0\x80",
        b"abcdefghijklmnopqrstuvwxyz\xf4\x90\x80\x80",
    ] {
        let mut bytes = to_bytes(&(bad.len() as u64));
        bytes.extend_from_slice(bad);
        let err = from_bytes::<String>(&bytes).unwrap_err();
        assert!(err.to_string().contains("invalid UTF-8"), "{bad:?}: {err}");
    }
    for good in [
        "",
        "a",
        "plain ascii",
        "ascii then é",
        "日本語",
        &"x".repeat(300),
    ] {
        round_trip(good.to_string());
    }
}
