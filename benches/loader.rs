//! The loader API's overheads, in one run:
//! - `loader_hit`: `get_with` on an L1 hit against a plain `get` hit (target: at most 1.1x) and
//!   against moka's `get_with` hit (target: faster);
//! - `loader_miss`: an L1 miss whose value is in Redis, through a memoized sync function and
//!   through `get_with`, against a blocking `get` miss (target: at most 1.1x).
//!
//! - `resilience_hit`: a stale-while-revalidate hit (the stale value served while its refresh
//!   is throttled) and a fail-safe hit during a Redis outage, against a fresh L1 hit (targets:
//!   at most 1.2x and 2x).
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
    let cache = support::filled(server, "bench_loader_hit", KEYS);
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
    memo.untyped()
        .set_many((0..KEYS).map(|i| (i.to_string(), i)))
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

fn resilience(c: &mut Criterion) {
    let mut server = support::Server::start();
    let build = |name: &str| {
        FlipCache::<u64, u64>::builder(name)
            .local_max(KEYS as usize)
            .redis_url(&server.url())
            .expire_time(Duration::from_millis(200))
            .stale_for(Duration::from_secs(3600))
            .fail_safe(true)
            .fail_safe_throttle(Duration::from_secs(3600))
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let fresh = FlipCache::<u64, u64>::builder("bench_fresh")
        .local_max(KEYS as usize)
        .redis_url(&server.url())
        .expire_time(Duration::from_secs(3600))
        .stale_for(Duration::from_secs(3600))
        .build()
        .unwrap();
    let stale = build("bench_stale");
    let outage = build("bench_outage");
    for i in 0..KEYS {
        fresh.get_with(&i, move || i).unwrap();
        stale.get_with(&i, move || i).unwrap();
        outage
            .set_with_ttl(i, i, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(outage.get(&i).unwrap(), Some(i));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Every stale entry claims its refresh once; the loader fails, so they stay stale and the
    // next claims wait for the (hour-long) throttle.
    for i in 0..KEYS {
        let _ = stale.try_get_with(&i, || Err::<u64, &str>("down"));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut g = c.benchmark_group("resilience_hit");
    let mut i = 0u64;
    g.bench_function("fresh", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(fresh.get_with(&i, move || i).unwrap())
        })
    });
    g.bench_function("stale", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(stale.try_get_with(&i, || Err::<u64, &str>("down")).unwrap())
        })
    });
    let served = stale.stats().stale_served;
    assert!(served > KEYS, "the bench must measure stale hits: {served}");
    server.stop();
    // The outage is noticed (the keep-alive or a call fails), then hot keys keep serving.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while outage.stats().fail_safe == 0 && std::time::Instant::now() < until {
        let _ = outage.get(&0);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(outage.stats().fail_safe > 0, "the outage must be on");
    g.bench_function("outage_fail_safe", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(outage.get_with(&i, move || i).unwrap())
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let server = support::Server::start();
    hits(c, &server);
    misses(c, &server);
    resilience(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = all
}
criterion_main!(benches);
