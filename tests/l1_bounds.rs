//! The L1's byte bound through the builder, against a real Redis: entries weigh their encoded
//! length plus a fixed overhead, or what a weigher says; values too heavy for the bound are
//! still served, from Redis.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flipcache::FlipCache;
use support::Server;

#[test]
fn local_max_bytes_bounds_the_l1_by_encoded_length() {
    let server = Server::start();
    let cache: FlipCache<u64, String> = FlipCache::builder("bounds_bytes")
        .local_max_bytes(10_000)
        .redis_url(&server.url())
        .build()
        .unwrap();
    assert_eq!(cache.local_max(), usize::MAX, "no entry bound of its own");
    for k in 0..100u64 {
        cache.set(k, "x".repeat(1000)).unwrap();
    }
    // 1,000 bytes + 64 each: at most 9 fit in 10,000.
    let held = cache.local_len();
    assert!((1..=9).contains(&held), "{held} entries held");
    // A value heavier than the whole bound is served from Redis, never kept locally.
    cache.set(1000, "y".repeat(20_000)).unwrap();
    assert_eq!(cache.get(&1000).unwrap().map(|v| v.len()), Some(20_000));
    assert!(!cache.local_contains(&1000));
}

#[test]
fn a_weigher_overrides_the_default_weight_and_both_bounds_hold() {
    let server = Server::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let cache: FlipCache<u64, String> = FlipCache::builder("bounds_weigher")
        .local_max(5)
        .local_max_bytes(10_000)
        .weigher(move |_k: &u64, v: &String| {
            c.fetch_add(1, Ordering::Relaxed);
            v.len() * 4
        })
        .redis_url(&server.url())
        .build()
        .unwrap();
    for k in 0..20u64 {
        cache.set(k, "x".repeat(10)).unwrap();
    }
    assert_eq!(
        cache.local_len(),
        5,
        "the entry bound binds for small values"
    );
    for k in 100..120u64 {
        cache.set(k, "x".repeat(1000)).unwrap();
    }
    let held = cache.local_len();
    assert!((1..=2).contains(&held), "4,000 each: {held} entries held");
    assert!(
        calls.load(Ordering::Relaxed) >= 40,
        "the weigher weighed every fill"
    );
}
