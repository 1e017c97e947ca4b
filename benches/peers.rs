//! flipcache against the references on the same data, each group one comparison:
//! - `l1_hit_u64`: `FlipCache<u64, u64>::get` vs `Mutex<lru::LruCache>`, `quick_cache`, `moka`;
//! - `l1_hit_u64_2_threads`: the same with two threads (time per get across both);
//! - `l1_hit_string32`: `FlipCache<String, String>` with 32-byte keys vs `Mutex<LruCache>`;
//! - `miss`: an L1-missing get vs a raw redis-rs `GET`;
//! - `set`: `set` vs a raw `SET`;
//! - in both, the raw multiplexed connection called from a blocking thread (what the blocking
//!   front's thread hand-off costs by itself);
//! - `batch_10k`: `get_many`/`set_many` of 10,000 vs a raw redis-rs pipeline.
//!
//! Runs against a private redis-server it starts. `cargo bench --bench peers`, then
//! `cargo run --release --example perf_table` prints the ratios against the targets.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flipcache::FlipCache;
use redis::Commands;

const KEYS: u64 = 1000;

fn l1_hits(c: &mut Criterion, server: &support::Server) {
    let cache: FlipCache<u64, u64> = FlipCache::builder("peers_u64")
        .local_max(KEYS as usize)
        .redis_url(&server.url())
        .build()
        .unwrap();
    cache.set_many((0..KEYS).map(|i| (i, i))).unwrap();
    let lru = Arc::new(Mutex::new(lru::LruCache::<u64, u64>::new(
        NonZeroUsize::new(KEYS as usize).unwrap(),
    )));
    let quick = Arc::new(quick_cache::sync::Cache::<u64, u64>::new(KEYS as usize));
    let moka = moka::sync::Cache::<u64, u64>::new(KEYS);
    for i in 0..KEYS {
        lru.lock().unwrap().put(i, i);
        quick.insert(i, i);
        moka.insert(i, i);
    }
    for i in 0..KEYS {
        assert_eq!(cache.get(&i).unwrap(), Some(i));
        assert!(cache.local_contains(&i), "the bench must measure L1 hits");
    }

    let mut g = c.benchmark_group("l1_hit_u64");
    let mut i = 0u64;
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(&i).unwrap())
        })
    });
    g.bench_function("mutex_lru", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(lru.lock().unwrap().get(&i).copied())
        })
    });
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(quick.get(&i))
        })
    });
    g.bench_function("moka", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(moka.get(&i))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("l1_hit_u64_2_threads");
    let c1 = cache.clone();
    g.bench_function("flipcache_1_thread", |b| {
        b.iter_custom(|iters| {
            threaded(1, iters, &|i| {
                black_box(c1.get(&(i % KEYS)).unwrap());
            })
        })
    });
    let c2 = cache.clone();
    g.bench_function("flipcache_2_threads", |b| {
        b.iter_custom(|iters| {
            threaded(2, iters, &|i| {
                black_box(c2.get(&(i % KEYS)).unwrap());
            })
        })
    });
    let l2 = lru.clone();
    g.bench_function("mutex_lru_2_threads", |b| {
        b.iter_custom(|iters| {
            threaded(2, iters, &|i| {
                black_box(l2.lock().unwrap().get(&(i % KEYS)).copied());
            })
        })
    });
    let q1 = quick.clone();
    g.bench_function("quick_cache_1_thread", |b| {
        b.iter_custom(|iters| {
            threaded(1, iters, &|i| {
                black_box(q1.get(&(i % KEYS)));
            })
        })
    });
    let q2 = quick.clone();
    g.bench_function("quick_cache_2_threads", |b| {
        b.iter_custom(|iters| {
            threaded(2, iters, &|i| {
                black_box(q2.get(&(i % KEYS)));
            })
        })
    });
    g.finish();

    let skeys: Vec<String> = (0..KEYS).map(|i| format!("{i:0>32}")).collect();
    let scache: FlipCache<String, String> = FlipCache::builder("peers_str")
        .local_max(KEYS as usize)
        .redis_url(&server.url())
        .build()
        .unwrap();
    scache
        .set_many(skeys.iter().map(|k| (k.clone(), k.clone())))
        .unwrap();
    let slru = Mutex::new(lru::LruCache::<String, String>::new(
        NonZeroUsize::new(KEYS as usize).unwrap(),
    ));
    for k in &skeys {
        slru.lock().unwrap().put(k.clone(), k.clone());
        assert!(scache.local_contains(k.as_str()));
    }
    let mut g = c.benchmark_group("l1_hit_string32");
    let mut i = 0usize;
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % skeys.len();
            black_box(scache.get(skeys[i].as_str()).unwrap())
        })
    });
    g.bench_function("mutex_lru", |b| {
        b.iter(|| {
            i = (i + 1) % skeys.len();
            black_box(slru.lock().unwrap().get(skeys[i].as_str()).cloned())
        })
    });
    g.finish();
}

/// Runs `iters` operations split over `threads` threads; returns the wall time.
fn threaded(threads: u64, iters: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    let per = iters / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..per {
                    op(t * 7919 + i);
                }
            });
        }
    });
    start.elapsed()
}

fn remote(c: &mut Criterion, server: &support::Server) {
    let cache: FlipCache<u64, u64> = FlipCache::builder("peers_remote")
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    let mut raw = server.raw();
    cache.set_many((0..KEYS).map(|i| (i, i))).unwrap();

    // With the L1 on but too small to hold the cycled keys, every get misses it and pays the
    // whole miss path: GET + PTTL in one round trip, decode, guarded fill.
    let l1_on: FlipCache<u64, u64> = FlipCache::builder("peers_remote")
        .local_max(1)
        .redis_url(&server.url())
        .build()
        .unwrap();
    // The raw multiplexed redis-rs connection, driven by a tokio runtime and called from this
    // (blocking) thread: the same thread hand-off a blocking flipcache call makes.
    let (rt, mut mux) = server.multiplexed();

    let mut g = c.benchmark_group("miss");
    let mut i = 0u64;
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(l1_on.get(&i).unwrap())
        })
    });
    g.bench_function("flipcache_no_l1", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get(&i).unwrap())
        })
    });
    g.bench_function("raw_get", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let v: Option<u64> = raw.get(format!("peers_remote:{i}")).unwrap();
            black_box(v)
        })
    });
    g.bench_function("raw_multiplexed_get_from_a_thread", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let v: Option<u64> = rt
                .block_on(redis::AsyncCommands::get(
                    &mut mux,
                    format!("peers_remote:{i}"),
                ))
                .unwrap();
            black_box(v)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("set");
    g.bench_function("flipcache", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            cache.set(i, i).unwrap()
        })
    });
    g.bench_function("raw_set", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let _: () = raw.set(format!("peers_remote:{i}"), i).unwrap();
        })
    });
    g.bench_function("raw_multiplexed_set_from_a_thread", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let _: () = rt
                .block_on(redis::AsyncCommands::set(
                    &mut mux,
                    format!("peers_remote:{i}"),
                    i,
                ))
                .unwrap();
        })
    });
    g.finish();

    const BATCH: u64 = 10_000;
    let keys: Vec<u64> = (0..BATCH).collect();
    let mut g = c.benchmark_group("batch_10k");
    g.sample_size(20);
    g.bench_function("flipcache_set_many", |b| {
        b.iter(|| cache.set_many(keys.iter().map(|&k| (k, k))).unwrap())
    });
    g.bench_function("raw_pipeline_set", |b| {
        b.iter(|| {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("SET")
                    .arg(format!("peers_remote:{k}"))
                    .arg(*k)
                    .ignore();
            }
            let _: () = p.query(&mut raw).unwrap();
        })
    });
    g.bench_function("flipcache_get_many", |b| {
        b.iter(|| black_box(cache.get_many(&keys).unwrap()))
    });
    g.bench_function("raw_pipeline_get", |b| {
        b.iter(|| {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("GET").arg(format!("peers_remote:{k}"));
            }
            let v: Vec<Option<u64>> = p.query(&mut raw).unwrap();
            black_box(v)
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let server = support::Server::start();
    l1_hits(c, &server);
    remote(c, &server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = all
}
criterion_main!(benches);
