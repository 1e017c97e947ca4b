//! What observability costs an L1 hit (target: a `get` hit with `metrics` and `tracing-spans`
//! on, a recorder and a subscriber installed, at most 1.1x the same hit with both off).
//!
//! A bench binary cannot switch a cargo feature at run time, so one run of
//! `scripts/bench-observability` builds and runs this file twice and compares:
//! - with both features off (`--no-default-features`): `l1_hit/no_feature`;
//! - with both on (the default): `l1_hit/quiet` (a cache built before any recorder or
//!   subscriber: the features' code runs, every handle is a no-op) and `l1_hit/observed` (a
//!   cache built after a Prometheus recorder and a `tracing` subscriber at TRACE were
//!   installed, its counters published every second in the background).
//!
//! Each run also measures `l1_hit/mutex_lru` (`Mutex<lru::LruCache>::get`), so that the two
//! runs can be compared by their ratios to it as well as by their raw times.
//!
//! Runs against a private redis-server it starts: `cargo bench --bench metrics`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flipcache::FlipCache;

const KEYS: u64 = 1000;

fn filled(server: &support::Server, name: &str) -> FlipCache<u64, u64> {
    support::filled(server, name, KEYS)
}

fn hit(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    cache: &FlipCache<u64, u64>,
) {
    let mut i = 0u64;
    g.bench_function(id, |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(&i).unwrap())
        })
    });
}

/// `Mutex<lru::LruCache>::get` of the same keys: the yardstick both runs measure.
fn mutex_lru(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let lru = std::sync::Mutex::new(lru::LruCache::new(
        std::num::NonZeroUsize::new(KEYS as usize).expect("non-zero"),
    ));
    for k in 0..KEYS {
        lru.lock().expect("lock").put(k, k);
    }
    let mut i = 0u64;
    g.bench_function("mutex_lru", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(lru.lock().expect("lock").get(&i).copied())
        })
    });
}

fn l1_hit(c: &mut Criterion) {
    let server = support::Server::start();
    let mut g = c.benchmark_group("l1_hit");
    mutex_lru(&mut g);
    #[cfg(not(any(feature = "metrics", feature = "tracing-spans")))]
    {
        let plain = filled(&server, "bench_metrics_plain");
        hit(&mut g, "no_feature", &plain);
    }
    #[cfg(all(feature = "metrics", feature = "tracing-spans"))]
    {
        let plain = filled(&server, "bench_metrics_plain");
        hit(&mut g, "quiet", &plain);
        let handle = {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the bench's only recorder");
            handle
        };
        support::capture::install_at(tracing::Level::TRACE);
        let observed = filled(&server, "bench_metrics_observed");
        hit(&mut g, "observed", &observed);
        let hits = observed.stats().local_hits;
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("flipcache_hits_total")
                    && l.contains("bench_metrics_observed")
                    && l.contains("local")
            })
            .expect("the hits were exported");
        assert!(line.ends_with(&format!(" {hits}")), "{line} vs {hits} hits");
    }
    g.finish();
}

criterion_group!(benches, l1_hit);
criterion_main!(benches);
