//! The loader API's overheads, in one run:
//! - `loader_hit`: `get_with` on an L1 hit against a plain `get` hit (target: at most 1.1x) and
//!   against moka's `get_with` hit (target: faster);
//! - `loader_miss`: an L1 miss whose value is in Redis, through a memoized sync function and
//!   through `get_with`, against a blocking `get` miss (target: at most 1.1x).
//!
//! Runs against a private redis-server it starts: `cargo bench --bench loader`, then
//! `cargo run --release --example perf_table` for the ratios.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use flipcache::{FlipCache, flipcache};

const KEYS: u64 = 1000;

static URL: OnceLock<String> = OnceLock::new();

/// An L1 of one entry over 1,000 cycled keys: every call misses it and reads Redis.
#[flipcache(name = "bench_loader_memo", local_max = 1, redis = URL.get())]
fn memo_miss(n: u64) -> u64 {
    n
}

fn hits(c: &mut Criterion, server: &support::Server) {
    let cache: FlipCache<u64, u64> = FlipCache::builder("bench_loader_hit")
        .local_max(KEYS as usize)
        .redis_url(&server.url())
        .build()
        .unwrap();
    cache.set_many((0..KEYS).map(|i| (i, i))).unwrap();
    for i in 0..KEYS {
        assert_eq!(cache.get(&i).unwrap(), Some(i));
        assert!(cache.local_contains(&i), "the bench must measure L1 hits");
    }
    let moka = moka::sync::Cache::<u64, u64>::new(KEYS);
    for i in 0..KEYS {
        moka.insert(i, i);
    }
    let mut g = c.benchmark_group("loader_hit");
    let mut i = 0u64;
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(&i).unwrap())
        })
    });
    g.bench_function("get_with", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get_with(&i, move || i).unwrap())
        })
    });
    g.bench_function("moka_get_with", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(moka.get_with(i, || i))
        })
    });
    g.finish();
}

fn misses(c: &mut Criterion, server: &support::Server) {
    let _ = URL.set(server.url());
    let cache: FlipCache<u64, u64> = FlipCache::builder("bench_loader_miss")
        .local_max(1)
        .redis_url(&server.url())
        .build()
        .unwrap();
    cache.set_many((0..KEYS).map(|i| (i, i))).unwrap();
    let memo = memo_miss_cache().unwrap();
    memo.set_many((0..KEYS).map(|i| (i.to_string(), i)))
        .unwrap();
    let before = memo.stats();
    let mut g = c.benchmark_group("loader_miss");
    let mut i = 0u64;
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(&i).unwrap())
        })
    });
    g.bench_function("get_with", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get_with(&i, move || i).unwrap())
        })
    });
    g.bench_function("memo_sync", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(memo_miss(i))
        })
    });
    g.finish();
    let after = memo.stats();
    assert_eq!(
        after.loads, before.loads,
        "the memo must read Redis, not run its body"
    );
    assert!(after.remote_hits > before.remote_hits);
}

fn all(c: &mut Criterion) {
    let server = support::Server::start();
    hits(c, &server);
    misses(c, &server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = all
}
criterion_main!(benches);
