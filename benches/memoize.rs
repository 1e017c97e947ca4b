//! A memoized call that hits the L1, against the `cached` crate's `#[cached]` hit on the same
//! function (target: at most 1.5x its time):
//! - `memo_hit_u64`: `fn(u64) -> u64`, against `#[cached]` (unbounded) and `#[cached(size)]`
//!   (an LRU, like our L1);
//! - `memo_hit_str`: `fn(&str) -> String`, against `#[cached]` keyed by a `String`;
//! - `memo_hit_2_args`: `fn(u64, u64) -> u64` (a composite key), against `#[cached]`.
//!
//! Runs against a private redis-server it starts (and stops at the end):
//! `cargo bench --bench memoize`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::OnceLock;

use cached::proc_macro::cached;
use criterion::{Criterion, criterion_group, criterion_main};
use flipcache::flipcache;

const KEYS: u64 = 1000;

static URL: OnceLock<String> = OnceLock::new();

#[flipcache(name = "bench_memo_u64", local_max = 1_000, redis = URL.get())]
fn double(n: u64) -> u64 {
    n * 2
}

#[cached]
fn double_cached(n: u64) -> u64 {
    n * 2
}

#[cached(size = 1000)]
fn double_cached_lru(n: u64) -> u64 {
    n * 2
}

#[flipcache(name = "bench_memo_str", local_max = 1_000, redis = URL.get())]
fn greet(name: &str) -> String {
    format!("hello {name}")
}

#[cached(key = "String", convert = r#"{ name.to_string() }"#)]
fn greet_cached(name: &str) -> String {
    format!("hello {name}")
}

#[flipcache(name = "bench_memo_2", local_max = 1_000, redis = URL.get())]
fn mul(a: u64, b: u64) -> u64 {
    a * b
}

#[cached]
fn mul_cached(a: u64, b: u64) -> u64 {
    a * b
}

fn hits(c: &mut Criterion) {
    let server = support::Server::start();
    URL.set(server.url()).expect("one server");
    let names: Vec<String> = (0..KEYS).map(|i| format!("user-{i:04}")).collect();
    for i in 0..KEYS {
        double(i);
        double_cached(i);
        double_cached_lru(i);
        greet(&names[i as usize]);
        greet_cached(&names[i as usize]);
        mul(i, i + 1);
        mul_cached(i, i + 1);
    }
    let cache = double_cache().unwrap();
    assert_eq!(
        cache.local_len(),
        KEYS as usize,
        "the bench must measure L1 hits"
    );

    let mut g = c.benchmark_group("memo_hit_u64");
    let mut i = 0u64;
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(double(black_box(i)))
        })
    });
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(double_cached(black_box(i)))
        })
    });
    g.bench_function("cached_lru", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(double_cached_lru(black_box(i)))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("memo_hit_str");
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(greet(black_box(&names[i as usize])))
        })
    });
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(greet_cached(black_box(&names[i as usize])))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("memo_hit_2_args");
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(mul(black_box(i), black_box(i + 1)))
        })
    });
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(mul_cached(black_box(i), black_box(i + 1)))
        })
    });
    g.finish();
    assert_eq!(cache.stats().misses, KEYS, "every timed call was an L1 hit");
    assert_eq!(greet_cache().unwrap().stats().misses, KEYS);
    assert_eq!(mul_cache().unwrap().stats().misses, KEYS);
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = hits
}
criterion_main!(benches);
