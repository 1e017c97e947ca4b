//! How soon a waiter in another process gets a value loaded under `distributed_lock`: a child
//! process (the holder) takes the lease and loads key `k{i}` (20 ms); this process (the waiter)
//! misses the same key 5 ms later, finds the lease taken and waits for the value. The latency is
//! from the moment the holder's loader returned (its write to Redis starts then) to the moment
//! the waiter's `get_with` returned the value, on the same machine's clock: the holder's write,
//! Redis's invalidation push, the wake-up and the waiter's read.
//!
//! Not a test: `cargo bench --bench lease` (it starts a private redis-server) prints p50, p90,
//! p99 and the worst of 200 rounds, and how many times the waiter ran the loader itself (0
//! expected).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flipcache::FlipCache;

const CHILD_ENV: &str = "FLIPCACHE_LEASE_BENCH_HOLDER";
const ROUNDS: usize = 200;
const LOAD: Duration = Duration::from_millis(20);
const HEAD_START: Duration = Duration::from_millis(5);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn cache(url: &str) -> FlipCache<String, String> {
    FlipCache::builder("lease_bench")
        .redis_url(url)
        .distributed_lock(Duration::from_secs(5))
        .build()
        .expect("build the cache")
}

/// The holder: for each line `i` on stdin, loads `k{i}` and prints when its loader returned.
fn holder(url: &str) {
    let cache = cache(url);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    for line in stdin.lock().lines() {
        let i: usize = line
            .expect("a round number")
            .trim()
            .parse()
            .expect("a round number");
        let loaded = Arc::new(std::sync::Mutex::new(0u128));
        let l = loaded.clone();
        let v = cache
            .get_with(&format!("k{i}"), move || {
                std::thread::sleep(LOAD);
                *l.lock().unwrap() = now_ns();
                format!("value {i}")
            })
            .expect("get_with");
        assert_eq!(v, format!("value {i}"));
        let at = *loaded.lock().unwrap();
        writeln!(out, "{at}").unwrap();
    }
}

fn main() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        holder(&url);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let server = support::Server::start();
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let mut to_holder = child.stdin.take().expect("stdin");
    let mut from_holder = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    from_holder.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");

    let cache = cache(&server.url());
    let ran = Arc::new(AtomicUsize::new(0));
    let mut latencies = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        writeln!(to_holder, "{i}").expect("tell the holder");
        std::thread::sleep(HEAD_START);
        let r = ran.clone();
        let v = cache
            .get_with(&format!("k{i}"), move || {
                r.fetch_add(1, Ordering::SeqCst);
                "the waiter's own".to_string()
            })
            .expect("get_with");
        let got = now_ns();
        line.clear();
        from_holder.read_line(&mut line).expect("the holder's time");
        let loaded: u128 = line.trim().parse().expect("a time");
        if v == format!("value {i}") {
            latencies.push(Duration::from_nanos(got.saturating_sub(loaded) as u64));
        }
    }
    drop(to_holder);
    let _ = child.wait();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "lease wake-up, {} of {ROUNDS} rounds served by the holder's load (the waiter loaded itself {} times)",
        latencies.len(),
        ran.load(Ordering::SeqCst)
    );
    println!(
        "holder's loader returned -> waiter's get_with returned: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
}
