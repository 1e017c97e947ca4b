//! What the `metrics` feature costs an L1 hit (target: at most 1.1x the same hit without it).
//!
//! A bench binary cannot switch a cargo feature at run time, so it compares, in one run:
//! - `l1_hit/no_recorder`: a `get` hit of a cache built before any recorder was installed (the
//!   feature's code runs, every handle is a no-op);
//! - `l1_hit/prometheus`: the same hit of a cache built after a Prometheus recorder was
//!   installed, its counters published every second in the background.
//!
//! The number without the feature comes from a second run of the same file:
//! `cargo bench --bench metrics --no-default-features` measures `l1_hit/no_feature`.
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

fn l1_hit(c: &mut Criterion) {
    let server = support::Server::start();
    let mut g = c.benchmark_group("l1_hit");
    #[cfg(not(feature = "metrics"))]
    {
        let plain = filled(&server, "bench_metrics_plain");
        hit(&mut g, "no_feature", &plain);
    }
    #[cfg(feature = "metrics")]
    {
        let plain = filled(&server, "bench_metrics_plain");
        let handle = {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the bench's only recorder");
            handle
        };
        let metered = filled(&server, "bench_metrics_metered");
        hit(&mut g, "no_recorder", &plain);
        hit(&mut g, "prometheus", &metered);
        let hits = metered.stats().local_hits;
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("flipcache_hits_total")
                    && l.contains("bench_metrics_metered")
                    && l.contains("local")
            })
            .expect("the hits were exported");
        assert!(line.ends_with(&format!(" {hits}")), "{line} vs {hits} hits");
    }
    g.finish();
}

criterion_group!(benches, l1_hit);
criterion_main!(benches);
