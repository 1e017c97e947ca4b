//! The seed's benchmark, same workload: 1,000 keys; `redis_set`/`flipcache_set`: 1,000 sets;
//! `redis_get`/`flipcache_get`: 100 passes over the 1,000 keys. Five repetitions each, printed as
//! the seed's Markdown table, plus the get speed-up.
//!
//! Run with `./scripts/demo benchmark` (private Redis), or with `FLIPCACHE_REDIS_URL` set:
//! `cargo run --release --example benchmark`.

use std::time::Instant;

use flipcache::FlipCache;
use redis::Commands;

const KEYS: u64 = 1_000;
const REPS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("FLIPCACHE_REDIS_URL")
        .unwrap_or_else(|_| flipcache::DEFAULT_REDIS_URL.to_owned());
    let mut rdp = redis::Client::open(url.as_str())?.get_connection()?;
    let cache: FlipCache<u64, u64> = FlipCache::builder("my_cache")
        .redis_url(&url)
        .local_max(KEYS as usize)
        .build()?;

    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    rows.push((
        "redis_set",
        time(|| {
            for i in 0..KEYS {
                let _: () = rdp.set(format!("my_cache:{i}"), i * 2).expect("SET");
            }
        }),
    ));
    rows.push((
        "flipcache_set",
        time(|| {
            for i in 0..KEYS {
                cache.set(i, i * 2).expect("set");
            }
        }),
    ));
    rows.push((
        "redis_get",
        time(|| {
            for _ in 0..100 {
                for i in 0..KEYS {
                    let v: Option<u64> = rdp.get(format!("my_cache:{i}")).expect("GET");
                    std::hint::black_box(v);
                }
            }
        }),
    ));
    rows.push((
        "flipcache_get",
        time(|| {
            for _ in 0..100 {
                for i in 0..KEYS {
                    std::hint::black_box(cache.get(&i).expect("get"));
                }
            }
        }),
    ));

    println!("| Benchmark Name | Mean Time (s) | Standard Deviation |");
    println!("|---|---|---|");
    for (name, samples) in &rows {
        let (mean, sd) = stats(samples);
        println!("| {name} | {mean:.6} | {sd:.6} |");
    }
    let mean = |name: &str| {
        rows.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| stats(s).0)
            .unwrap_or(f64::NAN)
    };
    println!();
    println!(
        "redis_get / flipcache_get = {:.0}x  (the Python original: ~1,300x)",
        mean("redis_get") / mean("flipcache_get")
    );
    println!(
        "flipcache_set / redis_set = {:.2}x",
        mean("flipcache_set") / mean("redis_set")
    );
    let s = cache.stats();
    println!(
        "flipcache_get L1 hits: {} of {}",
        s.local_hits,
        100 * KEYS * REPS as u64
    );
    cache.clear()?;
    Ok(())
}

fn time(mut f: impl FnMut()) -> Vec<f64> {
    (0..REPS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect()
}

fn stats(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
