//! Round trips measured in pairs: a blocking flipcache miss or `set`, and the raw redis-rs
//! command it stands for, timed alternately in short blocks so that both see the same machine
//! state (on a VM, the cost of a round trip drifts by several times within a minute, which
//! sequential benchmarks turn into noise). Prints the median of the per-block ratios.
//!
//! `cargo bench --bench round_trips`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;

use flipcache::FlipCache;
use redis::Commands;
use support::pairs::{BLOCKS, Pairs};

const KEYS: u64 = 1000;
fn main() {
    let server = support::Server::start();
    let cache: FlipCache<u64, u64> = FlipCache::builder("rt_remote")
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    // L1 on but holding one entry: every cycled key misses it and pays the whole miss path.
    let l1_on: FlipCache<u64, u64> = FlipCache::builder("rt_remote")
        .local_max(1)
        .redis_url(&server.url())
        .build()
        .unwrap();
    cache.set_many((0..KEYS).map(|i| (i, i))).unwrap();
    let mut raw = server.raw();
    let (rt, mut mux) = server.multiplexed();
    let key = |i: u64| format!("rt_remote:{}", i % KEYS);

    println!(
        "| path | flipcache (median) | reference (median) | ratio, median of {BLOCKS} paired blocks | target |"
    );
    println!("|---|---|---|---|---|");
    Pairs::run(
        |i| {
            black_box(l1_on.get(&(i % KEYS)).unwrap());
        },
        |i| {
            let v: Option<u64> = raw.get(key(i)).unwrap();
            black_box(v);
        },
    )
    .print("miss (GET + PTTL, L1 fill)", "raw `GET`", "<= 1.15x");
    let mut raw = server.raw();
    Pairs::run(
        |i| cache.set(i % KEYS, i).unwrap(),
        |i| {
            let _: () = raw.set(key(i), i).unwrap();
        },
    )
    .print("`set`", "raw `SET`", "<= 1.1x");
    Pairs::run(
        |i| {
            black_box(l1_on.get(&(i % KEYS)).unwrap());
        },
        |i| {
            let v: Option<u64> = rt
                .block_on(redis::AsyncCommands::get(&mut mux, key(i)))
                .unwrap();
            black_box(v);
        },
    )
    .print("miss", "raw multiplexed `GET` from a blocking thread", "-");
    Pairs::run(
        |i| cache.set(i % KEYS, i).unwrap(),
        |i| {
            let _: () = rt
                .block_on(redis::AsyncCommands::set(&mut mux, key(i), i))
                .unwrap();
        },
    )
    .print("`set`", "raw multiplexed `SET` from a blocking thread", "-");
}
