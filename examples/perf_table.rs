//! Prints the performance ratios against their targets from the criterion results of one run
//! of `cargo bench` (the medians in `target/criterion/*/*/new/estimates.json`).
//!
//! `cargo bench --bench peers --bench memoize --bench loader -p flipcache-workspace && cargo bench -p flipcache
//! --bench flipcodec && cargo run --release --example perf_table`

use std::path::{Path, PathBuf};

/// (what, our bench, the reference bench, target, how to read the ratio)
const ROWS: &[(&str, &str, &str, f64, Kind)] = &[
    (
        "L1 hit, u64 keys vs Mutex<LruCache>",
        "l1_hit_u64/flipcache",
        "l1_hit_u64/mutex_lru",
        1.5,
        Kind::AtMost,
    ),
    (
        "L1 hit, u64 keys vs quick_cache",
        "l1_hit_u64/flipcache",
        "l1_hit_u64/quick_cache",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "L1 hit, u64 keys vs moka",
        "l1_hit_u64/flipcache",
        "l1_hit_u64/moka",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "L1 hit, 2 threads: throughput vs 1 thread",
        "l1_hit_u64_2_threads/flipcache_2_threads",
        "l1_hit_u64_2_threads/flipcache_1_thread",
        1.6,
        Kind::Speedup,
    ),
    (
        "L1 hit, 32-byte String keys vs Mutex<LruCache>",
        "l1_hit_string32/flipcache",
        "l1_hit_string32/mutex_lru",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "miss (one round trip, L1 on) vs raw GET",
        "miss/flipcache",
        "miss/raw_get",
        1.15,
        Kind::AtMost,
    ),
    (
        "miss, L1 off (plain GET) vs raw GET",
        "miss/flipcache_no_l1",
        "miss/raw_get",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "miss vs raw multiplexed GET from a blocking thread",
        "miss/flipcache",
        "miss/raw_multiplexed_get_from_a_thread",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "set vs raw SET",
        "set/flipcache",
        "set/raw_set",
        1.1,
        Kind::AtMost,
    ),
    (
        "set vs raw multiplexed SET from a blocking thread",
        "set/flipcache",
        "set/raw_multiplexed_set_from_a_thread",
        f64::NAN,
        Kind::AtMost,
    ),
    (
        "set_many 10k vs raw pipeline",
        "batch_10k/flipcache_set_many",
        "batch_10k/raw_pipeline_set",
        1.3,
        Kind::AtMost,
    ),
    (
        "get_many 10k vs raw pipeline",
        "batch_10k/flipcache_get_many",
        "batch_10k/raw_pipeline_get",
        1.3,
        Kind::AtMost,
    ),
    (
        "memoized hit vs #[cached] hit",
        "memo_hit_u64/flipcache",
        "memo_hit_u64/cached",
        1.5,
        Kind::AtMost,
    ),
    (
        "get_with on an L1 hit vs get on an L1 hit",
        "loader_hit/get_with",
        "loader_hit/get",
        1.1,
        Kind::AtMost,
    ),
    (
        "get_with on an L1 hit vs moka get_with hit",
        "loader_hit/get_with",
        "loader_hit/moka_get_with",
        1.0,
        Kind::AtMost,
    ),
    (
        "memoized sync miss (value in Redis) vs blocking get miss",
        "loader_miss/memo_sync",
        "loader_miss/get",
        1.1,
        Kind::AtMost,
    ),
    (
        "get_with miss (value in Redis) vs blocking get miss",
        "loader_miss/get_with",
        "loader_miss/get",
        1.1,
        Kind::AtMost,
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    /// ours / reference, lower is better.
    AtMost,
    /// reference / ours (times per operation), higher is better.
    Speedup,
}

fn mean_ns(dir: &Path, bench: &str) -> Option<f64> {
    let path = dir
        .join(bench.replace(['+', ' '], "_"))
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    // The median: robust to the outliers a shared VM throws in (a descheduled vCPU).
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = PathBuf::from(target).join("criterion");
    println!("| path | flipcache | reference | ratio | target | holds |");
    println!("|---|---|---|---|---|---|");
    for (what, ours, theirs, goal, kind) in ROWS {
        let (Some(a), Some(b)) = (mean_ns(&dir, ours), mean_ns(&dir, theirs)) else {
            println!("| {what} | (not run) | | | | |");
            continue;
        };
        let (ratio, holds, goal_text) = match kind {
            Kind::AtMost => (a / b, a / b <= *goal, format!("<= {goal}x")),
            Kind::Speedup => (b / a, b / a >= *goal, format!(">= {goal}x")),
        };
        let (goal_text, holds) = if goal.is_nan() {
            ("-".to_string(), "-")
        } else {
            (goal_text, if holds { "yes" } else { "NO" })
        };
        println!(
            "| {what} | {} | {} | {ratio:.2}x | {goal_text} | {holds} |",
            fmt(a),
            fmt(b)
        );
    }
}

fn fmt(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}
