//! Round trips measured in pairs: a blocking flipcache miss or `set`, and the raw redis-rs
//! command it stands for, timed alternately in short blocks so that both see the same machine
//! state (on a VM, the cost of a round trip drifts by several times within a minute, which
//! sequential benchmarks turn into noise). Prints the median of the per-block ratios.
//!
//! `cargo bench --bench round_trips`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use flipcache::FlipCache;
use redis::Commands;

const KEYS: u64 = 1000;
const BLOCKS: usize = 200;
const PER_BLOCK: u64 = 50;

/// Times `PER_BLOCK` calls of `op`.
fn block(mut op: impl FnMut(u64)) -> Duration {
    let start = Instant::now();
    for i in 0..PER_BLOCK {
        op(i);
    }
    start.elapsed()
}

struct Pairs {
    ours: Vec<f64>,
    theirs: Vec<f64>,
}

impl Pairs {
    fn run(mut ours: impl FnMut(u64), mut theirs: impl FnMut(u64)) -> Pairs {
        // Warm up both.
        block(&mut ours);
        block(&mut theirs);
        let mut p = Pairs {
            ours: Vec::new(),
            theirs: Vec::new(),
        };
        for n in 0..BLOCKS {
            // Alternate which goes first.
            let (a, b) = if n % 2 == 0 {
                let a = block(&mut ours);
                (a, block(&mut theirs))
            } else {
                let b = block(&mut theirs);
                (block(&mut ours), b)
            };
            p.ours.push(a.as_secs_f64() * 1e6 / PER_BLOCK as f64);
            p.theirs.push(b.as_secs_f64() * 1e6 / PER_BLOCK as f64);
        }
        p
    }

    fn print(&self, what: &str, reference: &str, target: &str) {
        let mut ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.theirs)
            .map(|(a, b)| a / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {what} | {:.1} µs | {reference} {:.1} µs | {:.2}x (p10 {:.2}x, p90 {:.2}x) | {target} |",
            median(&self.ours),
            median(&self.theirs),
            ratios[ratios.len() / 2],
            ratios[ratios.len() / 10],
            ratios[ratios.len() * 9 / 10],
        );
    }
}

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
