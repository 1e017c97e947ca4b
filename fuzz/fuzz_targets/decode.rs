//! Arbitrary bytes into every FlipCodec decoder: no panic, no read past the input, no
//! runaway allocation or recursion (libFuzzer's `-rss_limit_mb` and `-timeout` catch the
//! last two), and whatever decodes re-encodes to bytes that decode to the same value.

#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::time::Duration;

use flipcache::flipcodec::VALUE_HEADER;
use flipcache::{FlipCodec, FlipValue, from_bytes, to_bytes};
use libfuzzer_sys::fuzz_target;

#[derive(FlipCodec, Clone, Debug, PartialEq)]
enum Kind {
    Unit,
    Tuple(u8, String),
    Struct { x: i64, y: Option<f32> },
    Nested(Box<Kind>),
}

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Inner {
    id: u64,
    tags: Vec<String>,
    kind: Kind,
    ratio: f64,
    #[flipcodec(skip)]
    scratch: Vec<u8>,
}

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Outer {
    name: String,
    inners: Vec<Inner>,
    index: HashMap<String, Vec<i32>>,
    tree: BTreeMap<u16, Kind>,
    next: Option<Box<Outer>>,
    grid: [i16; 3],
    misc: (char, bool, u128, i8, Duration),
}

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Wrapper<T> {
    value: T,
    set: HashSet<u32>,
}

/// Decoding `data` as `T` must not panic; a value that decodes must re-encode to bytes
/// that decode again and re-encode to the very same bytes. (Comparing bytes rather than
/// values keeps NaN payloads honest; a type holding hash containers would break the byte
/// comparison by iteration order, so those only get the decode checks.)
fn stable<T: FlipCodec + Debug>(data: &[u8]) {
    if let Ok(v) = from_bytes::<T>(data) {
        let once = to_bytes(&v);
        let back = from_bytes::<T>(&once)
            .unwrap_or_else(|e| panic!("{v:?} re-encoded to bytes that do not decode: {e}"));
        assert_eq!(to_bytes(&back), once, "{v:?}");
    }
}

fn decodes<T: FlipCodec + Debug>(data: &[u8]) {
    if let Ok(v) = from_bytes::<T>(data) {
        let once = to_bytes(&v);
        let back = from_bytes::<T>(&once)
            .unwrap_or_else(|e| panic!("{v:?} re-encoded to bytes that do not decode: {e}"));
        assert_eq!(to_bytes(&back).len(), once.len(), "{v:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    stable::<Kind>(data);
    stable::<Inner>(data);
    stable::<(u64, i64, f64, f32, char, bool)>(data);
    stable::<Vec<String>>(data);
    stable::<BTreeMap<String, Option<u128>>>(data);
    stable::<[Kind; 2]>(data);
    decodes::<Outer>(data);
    decodes::<Wrapper<HashMap<String, Kind>>>(data);

    // The cache-value path: the header check, then the same body decoder.
    let _ = Outer::decode_value(data);
    let mut stored = vec![VALUE_HEADER];
    stored.extend_from_slice(&Outer::FINGERPRINT.to_le_bytes());
    stored.extend_from_slice(data);
    if let Ok(v) = Outer::decode_value(&stored) {
        let mut again = Vec::new();
        v.encode_value(&mut again).expect("encodes");
        assert!(Outer::decode_value(&again).is_ok());
    }
});
