//! Invalidation latency: from a foreign `SET` (another connection) to the L1 entry's removal,
//! against a private redis-server. Run: `cargo bench --bench invalidation`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use redis::Commands;

const ROUNDS: usize = 5000;

fn main() {
    let server = support::Server::start();
    let cache = flipcache::FlipCache::<String, u64>::builder("bench_inval")
        .redis_url(&server.url())
        .build()
        .unwrap();
    let mut raw = server.raw();
    let mut to_removal = Vec::with_capacity(ROUNDS);
    let mut set_rtt = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS as u64 {
        cache.set("k", i).unwrap();
        assert!(cache.local_contains("k"));
        let start = Instant::now();
        let _: () = raw.set("bench_inval:k", i + 1).unwrap();
        let acked = start.elapsed();
        while cache.local_contains("k") {
            std::hint::spin_loop();
            if start.elapsed() > Duration::from_secs(5) {
                panic!("no invalidation within 5 s");
            }
        }
        to_removal.push(start.elapsed());
        set_rtt.push(acked);
    }
    println!("| {ROUNDS} rounds | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (label, mut v) in [
        ("foreign SET -> L1 entry removed", to_removal),
        ("foreign SET round trip (reference)", set_rtt),
    ] {
        v.sort();
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
        println!(
            "| {label} | {:?} | {:?} | {:?} | {:?} |",
            p(0.5),
            p(0.9),
            p(0.99),
            v[v.len() - 1]
        );
    }
}
