//! `#[derive(FlipCodec)]` end to end: round trips of nested derived types (proptest), schema
//! mismatch detection, and hostile input (random bytes, huge length prefixes, deep nesting).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use flipcache::flipcodec::{MAX_DEPTH, VALUE_HEADER, decode_value, encode_value};
use flipcache::{DecodeError, FlipCodec, FlipValue, Reader, from_bytes, to_bytes};
use proptest::prelude::*;

// ---- A global allocator that records the largest allocation made while a thread watches ----

struct Watching;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOC: Watching = Watching;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    WATCHING.with(|w| w.set(true));
    let r = f();
    WATCHING.with(|w| w.set(false));
    (r, LARGEST.with(Cell::get))
}

// ---- Types ----

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
}

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Wrapper<T> {
    value: T,
    count: u32,
}

#[derive(FlipCodec, Clone, Debug, PartialEq, Default)]
struct Unit;

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Pair(i8, char);

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Outer {
    name: String,
    inners: Vec<Inner>,
    index: HashMap<String, Vec<i32>>,
    maybe: Option<Inner>,
    pair: Pair,
    unit: Unit,
    #[flipcodec(skip)]
    memo: Option<u64>,
    wrapped: Wrapper<Vec<u8>>,
    tree: BTreeMap<i32, Kind>,
    grid: [i16; 3],
    #[flipcodec(with = millis)]
    ttl: Duration,
}

/// A `with` module: a `Duration` as whole milliseconds.
mod millis {
    use super::*;
    pub fn encode(d: &Duration, out: &mut Vec<u8>) {
        (d.as_millis() as u64).encode(out);
    }
    pub fn decode(input: &mut Reader<'_>) -> Result<Duration, DecodeError> {
        u64::decode(input).map(Duration::from_millis)
    }
}

// ---- Strategies ----

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn kind() -> impl Strategy<Value = Kind> {
    let leaf = prop_oneof![
        Just(Kind::Unit),
        (any::<u8>(), text()).prop_map(|(a, b)| Kind::Tuple(a, b)),
        (
            any::<i64>(),
            proptest::option::of(proptest::num::f32::NORMAL)
        )
            .prop_map(|(x, y)| Kind::Struct { x, y }),
    ];
    leaf.prop_recursive(4, 16, 1, |inner| {
        inner.prop_map(|k| Kind::Nested(Box::new(k)))
    })
}

fn inner() -> impl Strategy<Value = Inner> {
    (
        any::<u64>(),
        proptest::collection::vec(text(), 0..4),
        kind(),
    )
        .prop_map(|(id, tags, kind)| Inner { id, tags, kind })
}

fn outer() -> impl Strategy<Value = Outer> {
    (
        (
            text(),
            proptest::collection::vec(inner(), 0..4),
            proptest::collection::hash_map(
                text(),
                proptest::collection::vec(any::<i32>(), 0..4),
                0..4,
            ),
            proptest::option::of(inner()),
            (any::<i8>(), any::<char>()),
        ),
        (
            proptest::collection::vec(any::<u8>(), 0..16),
            any::<u32>(),
            proptest::collection::btree_map(any::<i32>(), kind(), 0..4),
            any::<[i16; 3]>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((name, inners, index, maybe, (a, b)), (bytes, count, tree, grid, ms))| Outer {
                name,
                inners,
                index,
                maybe,
                pair: Pair(a, b),
                unit: Unit,
                memo: None,
                wrapped: Wrapper {
                    value: bytes,
                    count,
                },
                tree,
                grid,
                ttl: Duration::from_millis(u64::from(ms)),
            },
        )
}

proptest! {
    #[test]
    fn nested_derived_types_round_trip(v in outer()) {
        let bytes = to_bytes(&v);
        prop_assert_eq!(&from_bytes::<Outer>(&bytes).unwrap(), &v);
        // The derived hint is an upper bound, but for the `with` field (a u64, at most 10
        // bytes), which it cannot know about.
        prop_assert!(v.encoded_len_hint() + 10 >= bytes.len());
        // Every strict prefix is rejected, never decoded as something else.
        for cut in [0, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(from_bytes::<Outer>(&bytes[..cut]).is_err());
        }
        // The cache-value form: header, fingerprint, body.
        let mut stored = Vec::new();
        v.encode_value(&mut stored).unwrap();
        prop_assert_eq!(stored[0], VALUE_HEADER);
        prop_assert_eq!(&stored[9..], &bytes[..]);
        prop_assert_eq!(&Outer::decode_value(&stored).unwrap(), &v);
    }

    #[test]
    fn enums_and_generics_round_trip(k in kind(), w in any::<(u64, u32)>()) {
        prop_assert_eq!(from_bytes::<Kind>(&to_bytes(&k)).unwrap(), k.clone());
        prop_assert!(k.encoded_len_hint() >= to_bytes(&k).len());
        let wrapped = Wrapper { value: (k, w.0), count: w.1 };
        prop_assert_eq!(from_bytes::<Wrapper<(Kind, u64)>>(&to_bytes(&wrapped)).unwrap(), wrapped);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = from_bytes::<Outer>(&bytes);
        let _ = from_bytes::<Kind>(&bytes);
        let _ = from_bytes::<Wrapper<HashMap<String, Kind>>>(&bytes);
        let _ = Outer::decode_value(&bytes);
        // Past a valid header, so the body decoder sees the garbage too.
        let mut stored = vec![VALUE_HEADER];
        stored.extend_from_slice(&Outer::FINGERPRINT.to_le_bytes());
        stored.extend_from_slice(&bytes);
        let _ = Outer::decode_value(&stored);
    }

    #[test]
    fn mutated_encodings_never_panic(
        v in outer(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = to_bytes(&v);
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = from_bytes::<Outer>(&bytes);
    }
}

#[test]
fn layout_is_compact_and_documented() {
    #[derive(FlipCodec, Clone, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: f64,
    }
    assert_eq!(Point::MIN_ENCODED_LEN, 2);
    // -1 zigzags to 1; 0.5 is 5 / 10^1: (zigzag(5) << 3) | 1 = 81.
    assert_eq!(to_bytes(&Point { x: -1, y: 0.5 }), [1, 81]);
    let mut raw = vec![1, 7];
    raw.extend((0.1f64 + 0.2).to_le_bytes());
    assert_eq!(
        to_bytes(&Point {
            x: -1,
            y: 0.1 + 0.2
        }),
        raw
    );
    assert_eq!(to_bytes(&Kind::Unit), [0]);
    assert_eq!(to_bytes(&Kind::Tuple(7, "a".into())), [1, 7, 1, b'a']);
    assert_eq!(to_bytes(&Unit), [] as [u8; 0]);
    assert_eq!(Kind::MIN_ENCODED_LEN, 1);
}

#[test]
fn skip_and_with_fields() {
    #[derive(FlipCodec, Clone, Debug, PartialEq)]
    struct Session {
        user: String,
        #[flipcodec(skip)]
        scratch: Vec<u8>,
        #[flipcodec(with = millis)]
        idle: Duration,
    }
    let s = Session {
        user: "u".into(),
        scratch: vec![1, 2, 3],
        idle: Duration::from_millis(1500),
    };
    let bytes = to_bytes(&s);
    assert_eq!(bytes, [1, b'u', 0xdc, 0x0b]);
    let back: Session = from_bytes(&bytes).unwrap();
    assert_eq!(
        back,
        Session {
            scratch: Vec::new(),
            ..s
        }
    );
}

mod nested_a {
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Inner {
        pub a: u32,
        pub b: u32,
    }
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Outer {
        pub items: Vec<Inner>,
    }
}

mod nested_b {
    // Same names and spelling as `nested_a`, but `Inner`'s fields are swapped.
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Inner {
        pub b: u32,
        pub a: u32,
    }
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Outer {
        pub items: Vec<Inner>,
    }
}

#[test]
fn changing_a_nested_type_changes_the_outer_fingerprint() {
    use flipcache::FlipCodec;
    assert_ne!(nested_a::Inner::FINGERPRINT, nested_b::Inner::FINGERPRINT);
    assert_ne!(
        nested_a::Outer::FINGERPRINT,
        nested_b::Outer::FINGERPRINT,
        "an Outer written before Inner changed must not decode into the new Outer"
    );
    let old = nested_a::Outer {
        items: vec![nested_a::Inner { a: 1, b: 2 }],
    };
    let mut stored = Vec::new();
    flipcache::FlipValue::encode_value(&old, &mut stored).unwrap();
    let err = <nested_b::Outer as flipcache::FlipValue>::decode_value(&stored).unwrap_err();
    assert!(err.contains("Outer"), "{err}");
}

#[derive(FlipCodec, Clone, Debug, PartialEq)]
struct Tree {
    label: String,
    children: Vec<Tree>,
    parent: Option<Box<Self>>,
}

#[test]
fn recursive_types_still_derive() {
    let t = Tree {
        label: "root".into(),
        children: vec![Tree {
            label: "leaf".into(),
            children: vec![],
            parent: None,
        }],
        parent: None,
    };
    assert_eq!(from_bytes::<Tree>(&to_bytes(&t)).unwrap(), t);
}

#[test]
fn generic_instantiations_have_distinct_fingerprints() {
    assert_ne!(<Wrapper<u32>>::FINGERPRINT, <Wrapper<String>>::FINGERPRINT);
    assert_ne!(<Wrapper<Kind>>::FINGERPRINT, <Wrapper<Inner>>::FINGERPRINT);
    #[derive(FlipCodec, Clone, Debug, PartialEq)]
    struct Fixed<const N: usize> {
        bytes: [u8; N],
    }
    assert_ne!(<Fixed<4>>::FINGERPRINT, <Fixed<8>>::FINGERPRINT);
    assert_eq!(
        from_bytes::<Fixed<2>>(&to_bytes(&Fixed { bytes: [1, 2] })).unwrap(),
        Fixed { bytes: [1, 2] }
    );
}

mod v1 {
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Shape {
        pub name: String,
        pub dimensions: Vec<f64>,
        pub edges: i64,
        pub area: f64,
    }
}

mod v2 {
    /// `v1::Shape` with a field added.
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Shape {
        pub name: String,
        pub dimensions: Vec<f64>,
        pub edges: i64,
        pub area: f64,
        pub color: Option<String>,
    }
}

mod v3 {
    /// `v1::Shape` with two fields of the same type swapped: the body alone would decode
    /// into a wrong value; the fingerprint catches it.
    #[derive(flipcache::FlipCodec, Clone, Debug, PartialEq)]
    pub struct Shape {
        pub name: String,
        pub dimensions: Vec<f64>,
        pub area: f64,
        pub edges: i64,
    }
}

#[test]
fn a_value_written_by_another_version_of_the_type_is_an_error_naming_it() {
    let old = v1::Shape {
        name: "womp".into(),
        dimensions: vec![4.1, 3.4],
        edges: 6,
        area: 16.38,
    };
    let mut stored = Vec::new();
    old.encode_value(&mut stored).unwrap();

    let err = v2::Shape::decode_value(&stored).unwrap_err();
    assert!(
        err.starts_with("stored value was written by a different version of `Shape`"),
        "{err}"
    );
    assert!(err.contains("fingerprint mismatch"), "{err}");
    assert!(v3::Shape::decode_value(&stored).is_err());
    assert_eq!(v1::Shape::decode_value(&stored).unwrap(), old);

    // What the fingerprint prevents: decoding the bare body into the reordered type
    // "succeeds" with swapped fields.
    let body = to_bytes(&old);
    let wrong: v3::Shape = from_bytes(&body).unwrap();
    assert_ne!(wrong.area, old.area);

    // The same check through the public envelope functions.
    let err = decode_value::<v2::Shape>(&stored, "Shape").unwrap_err();
    assert!(err.to_string().contains("different version of `Shape`"));
    let mut again = Vec::new();
    encode_value(&old, &mut again);
    assert_eq!(again, stored);
}

#[test]
fn huge_length_prefixes_fail_fast_without_allocating() {
    // The watcher does see allocations.
    assert!(largest_allocation(|| vec![0u8; 5000]).1 >= 5000);

    // Outer's first field is a String: claim 2^63 bytes of it.
    let mut huge = to_bytes(&(1u64 << 63));
    huge.extend_from_slice(b"tiny");
    let started = Instant::now();
    let (result, largest) = largest_allocation(|| from_bytes::<Outer>(&huge));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("length prefix"), "{err}");
    assert!(largest < 1024, "allocated {largest} bytes");

    // A valid name, then a vector of Inner claiming a billion elements.
    let mut bytes = to_bytes(&"n".to_string());
    bytes.extend(to_bytes(&1_000_000_000u64));
    bytes.extend([0u8; 64]);
    let (result, largest) = largest_allocation(|| from_bytes::<Outer>(&bytes));
    assert!(result.is_err());
    assert!(largest < 4096, "allocated {largest} bytes");

    // A map claiming as many entries as the input has bytes: preallocation is capped by
    // the remaining input, decoding then fails at the first missing byte.
    let mut map = to_bytes(&4096u64);
    map.extend(vec![0u8; 4096]);
    let (result, largest) = largest_allocation(|| from_bytes::<HashMap<String, Vec<Inner>>>(&map));
    assert!(result.is_err());
    assert!(largest < 4096 * 64, "allocated {largest} bytes");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn deep_nesting_fails_without_overflowing_the_stack() {
    // `Kind::Nested` is variant 3: a million of them would recurse a million frames deep.
    let hostile = vec![3u8; 1_000_000];
    let err = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || from_bytes::<Kind>(&hostile).unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert!(err.to_string().contains("nest deeper"), "{err}");

    // Nesting within the limit round-trips.
    let mut k = Kind::Unit;
    for _ in 0..MAX_DEPTH - 1 {
        k = Kind::Nested(Box::new(k));
    }
    assert_eq!(from_bytes::<Kind>(&to_bytes(&k)).unwrap(), k);
}

#[test]
fn unknown_variants_are_rejected() {
    let err = from_bytes::<Kind>(&[9]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown variant index 9 for enum `Kind` at byte 1"
    );
}
