//! Spans (`tracing-spans` feature) and log lines against a real, private Redis: a span per
//! Redis round trip and per load with `cache` and (with `trace_keys`) `key`, none on an L1 hit; connects and
//! reconnects at INFO, a lost connection and a start with Redis down at WARN once per outage;
//! no `flipcache:` prefix in messages.

mod support;

use std::time::Duration;

use flipcache::FlipCache;
use support::capture::{EVENTS, SPANS, events, install, spans};
use support::{Server, eventually};
use tracing::Level;

#[test]
fn a_span_per_round_trip_and_per_load_and_none_per_hit() {
    install();
    let server = Server::start();
    // Spans name keys when asked (`trace_keys`; see tests/trace_keys.rs for the default).
    let cache: FlipCache<u64, u64> = server.builder("ob_spans").trace_keys(true).build().unwrap();
    cache.set(1, 10).unwrap();
    assert_eq!(
        spans(
            "flipcache.redis",
            &["cache=ob_spans ", "key=ob_spans:1 ", "command=set "]
        ),
        1
    );
    let before = SPANS.lock().unwrap().len();
    for _ in 0..100 {
        assert_eq!(cache.get(&1).unwrap(), Some(10));
        assert_eq!(cache.get_with(&1, || 0).unwrap(), 10);
    }
    let on_hits: Vec<_> = SPANS.lock().unwrap()[before..]
        .iter()
        .filter(|(_, f)| f.contains("cache=ob_spans "))
        .cloned()
        .collect();
    assert!(on_hits.is_empty(), "spans on L1 hits: {on_hits:?}");

    assert_eq!(cache.get_with(&2, || 20).unwrap(), 20);
    assert_eq!(
        spans("flipcache.load", &["cache=ob_spans ", "key=ob_spans:2 "]),
        1
    );
    // The leader's read, then the store.
    assert!(spans("flipcache.redis", &["key=ob_spans:2 ", "command=get "]) >= 1);
    assert_eq!(
        spans("flipcache.redis", &["key=ob_spans:2 ", "command=set "]),
        1
    );
}

#[test]
fn connects_reconnects_and_each_outage_are_logged_once() {
    install();
    let mut server = Server::start();
    // The endpoint field reads `127.0.0.1:<port>/<db>`.
    let port = format!(":{}/", server.port());
    let cache: FlipCache<u64, u64> = server.builder("ob_outage").build().unwrap();
    assert!(events(Level::INFO, &["message=connected to Redis", &port]) >= 1);
    assert!(events(Level::INFO, &["message=client tracking registered", &port]) >= 1);

    let lost = ["message=lost the Redis connection", port.as_str()];
    for outage in 1..=2 {
        server.stop();
        eventually(Duration::from_secs(10), "the warning", || {
            events(Level::WARN, &lost) == outage
        });
        // Reconnect attempts go on every 500 ms: no further warning for this outage.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(cache.get(&1).is_err());
        assert_eq!(events(Level::WARN, &lost), outage, "one warning per outage");
        server.restart();
        eventually(Duration::from_secs(10), "the reconnect", || {
            events(Level::INFO, &["message=reconnected to Redis", &port]) == outage
        });
    }
}

#[test]
fn a_start_with_redis_down_warns_once() {
    install();
    let mut server = Server::start();
    let url = server.url();
    server.stop();
    // Kept alive together: the three share one connection, so one outage.
    let mut caches = Vec::new();
    for name in ["ob_lazy_a", "ob_lazy_b", "ob_lazy_c"] {
        let cache = FlipCache::<u64, u64>::builder(name)
            .redis_url(&url)
            .tracking(support::tracking())
            .lazy_connect(true)
            .timeout(Duration::from_millis(200))
            .connect_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        assert!(cache.get(&1).is_err());
        caches.push(cache);
    }
    let warned = ["message=built without reaching Redis"];
    assert_eq!(events(Level::WARN, &warned), 1, "one outage, one warning");
    assert_eq!(events(Level::WARN, &["cache=ob_lazy_a ", warned[0]]), 1);
}

#[test]
fn messages_carry_no_crate_prefix() {
    install();
    let server = Server::start();
    let cache: FlipCache<u64, u64> = server.builder("ob_prefix").build().unwrap();
    cache.set(1, 1).unwrap();
    assert!(!EVENTS.lock().unwrap().is_empty());
    let prefixed: Vec<_> = EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, f)| f.contains("message=flipcache:"))
        .cloned()
        .collect();
    assert!(prefixed.is_empty(), "{prefixed:?}");
}
