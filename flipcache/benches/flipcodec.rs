//! FlipCodec vs serde_json: encode + decode of the seed's `Shape` and of a nested struct with
//! a `Vec` and a `HashMap`, and the encoded sizes. Criterion reports the times; a short
//! self-timed pass at the end prints the ratios of one run.
//!
//! `cargo bench -p flipcache --bench flipcodec -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use flipcache::{FlipCodec, from_bytes, to_bytes};
use serde::{Deserialize, Serialize};

#[derive(FlipCodec, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Shape {
    name: String,
    dimensions: Vec<f64>,
    edges: i64,
    area: f64,
}

#[derive(FlipCodec, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Catalog {
    id: u64,
    owner: Option<String>,
    shapes: Vec<Shape>,
    counts: HashMap<String, u32>,
    tags: Vec<String>,
}

fn shape() -> Shape {
    Shape {
        name: "womp".into(),
        dimensions: vec![4.1, 3.4],
        edges: 6,
        area: 16.38,
    }
}

fn catalog() -> Catalog {
    Catalog {
        id: 90_210,
        owner: Some("geometry-team".into()),
        shapes: (0..8)
            .map(|i| Shape {
                name: format!("shape-{i}"),
                dimensions: vec![1.5 * f64::from(i), 2.25, 0.125],
                edges: i64::from(i) + 3,
                area: 3.375 * f64::from(i),
            })
            .collect(),
        counts: (0..8).map(|i| (format!("kind-{i}"), i * 1000)).collect(),
        tags: vec!["polygon".into(), "2d".into(), "cached".into()],
    }
}

fn flipcodec_round_trip<T: FlipCodec>(v: &T) -> T {
    let bytes = to_bytes(black_box(v));
    from_bytes(black_box(&bytes)).expect("decodes")
}

fn json_round_trip<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let bytes = serde_json::to_vec(black_box(v)).expect("encodes");
    serde_json::from_slice(black_box(&bytes)).expect("decodes")
}

fn bench_value<T>(c: &mut Criterion, name: &str, v: &T)
where
    T: FlipCodec + Serialize + serde::de::DeserializeOwned,
{
    let mut group = c.benchmark_group(name);
    group.bench_function("flipcodec encode+decode", |b| {
        b.iter(|| flipcodec_round_trip(v))
    });
    group.bench_function("serde_json encode+decode", |b| {
        b.iter(|| json_round_trip(v))
    });
    group.bench_function("flipcodec encode", |b| b.iter(|| to_bytes(black_box(v))));
    group.bench_function("serde_json encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(v)).expect("encodes"))
    });
    let flip = to_bytes(v);
    let json = serde_json::to_vec(v).expect("encodes");
    group.bench_function("flipcodec decode", |b| {
        b.iter(|| from_bytes::<T>(black_box(&flip)).expect("decodes"))
    });
    group.bench_function("serde_json decode", |b| {
        b.iter(|| serde_json::from_slice::<T>(black_box(&json)).expect("decodes"))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_value(c, "shape", &shape());
    bench_value(c, "catalog", &catalog());
}

criterion_group!(group, benches);

/// Time per call of `f`, over about `budget`.
fn per_call<R>(budget: Duration, mut f: impl FnMut() -> R) -> Duration {
    let mut n = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        let took = start.elapsed();
        if took >= budget || n >= 1 << 30 {
            return took / n;
        }
        n *= 2;
    }
}

fn summary<T>(name: &str, v: &T)
where
    T: FlipCodec + Serialize + serde::de::DeserializeOwned,
{
    let flip = to_bytes(v).len();
    let json = serde_json::to_vec(v).expect("encodes").len();
    let budget = Duration::from_millis(500);
    let f = per_call(budget, || flipcodec_round_trip(v));
    let j = per_call(budget, || json_round_trip(v));
    println!(
        "{name:9} size: flipcodec {flip:4} B, json {json:4} B ({:.2}x smaller); \
         encode+decode: flipcodec {f:>9.1?}, json {j:>9.1?} ({:.1}x faster)",
        json as f64 / flip as f64,
        j.as_secs_f64() / f.as_secs_f64(),
    );
}

fn main() {
    assert_eq!(flipcodec_round_trip(&shape()), shape());
    assert_eq!(flipcodec_round_trip(&catalog()), catalog());
    group();
    Criterion::default().configure_from_args().final_summary();
    println!("\nsummary (self-timed, one run):");
    summary("shape", &shape());
    summary("catalog", &catalog());
    // The worst case for the f64 encoding: full-precision results take 9 bytes each.
    let computed: Vec<f64> = (1..=64).map(|i| f64::from(i) / 7.0).collect();
    summary("f64/7 x64", &computed);
}
