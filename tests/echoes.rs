//! Echoes: key-based tracking tracks without `NOLOOP` (see `remote/connection.rs`), so Redis
//! pushes this process's own writes back to it. Each write that fills the L1 expects its one
//! echo and keeps its entry; everything else still invalidates.

mod support;

use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, drain_pushes, eventually, read_until_held};

const PUSH_WAIT: Duration = Duration::from_secs(5);

/// A cache whose reads renew the TTL (`GETEX`), which is `ttl`.
fn renewing(server: &Server, name: &str, ttl: Duration) -> FlipCache<String, String> {
    server
        .builder(name)
        .expire_time(ttl)
        .refresh_expire_time_on_get(true)
        .build()
        .unwrap()
}

/// Another client writes `value` under `key` of `c`: its push drops the entry, and `c` reads
/// the new value (no echo expected by `c` took the push for its own).
fn foreign_write_is_heard(
    c: &FlipCache<String, String>,
    raw: &mut redis::Connection,
    key: &str,
    value: &str,
) {
    let _: () = raw.set(format!("{}:{key}", c.name()), value).unwrap();
    eventually(PUSH_WAIT, "the foreign write's push", || {
        !c.local_contains(key)
    });
    assert_eq!(c.get(key).unwrap().as_deref(), Some(value));
}

#[test]
fn own_writes_keep_their_entries_once_their_echoes_are_handled() {
    let server = Server::start();
    let c: FlipCache<String, String> = server.cache("ech");
    let mut raw = server.raw();
    c.set("one", "mine").unwrap();
    c.set_many([("two", "mine"), ("three", "mine")]).unwrap();
    // A key written twice in one batch expects two echoes.
    c.set_many([("four", "a"), ("four", "b")]).unwrap();
    drain_pushes(&c, &mut raw, "sentinel");
    for k in ["one", "two", "three", "four"] {
        assert!(c.local_contains(k), "the echo of `{k}` dropped its entry");
    }
    let hits = c.stats().local_hits;
    assert_eq!(c.get("four").unwrap().as_deref(), Some("b"));
    assert_eq!(c.stats().local_hits, hits + 1);
    // Echoes are not counted as invalidations: only the sentinel's second write, which
    // dropped its entry (broadcasting, its first write is pushed too, and drops nothing).
    assert_eq!(c.stats().invalidations, 1);
    // Another client's write after them is heard.
    foreign_write_is_heard(&c, &mut raw, "one", "theirs");
}

#[test]
fn own_writes_keep_their_entries_on_the_async_front() {
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = rt.block_on(server.cache_async::<String, String>("echa"));
    // A blocking handle of the same cache shares the tracked connection: draining it drains
    // the async one's pushes too.
    let c: FlipCache<String, String> = server.cache("echa");
    let mut raw = server.raw();
    rt.block_on(a.set("k", "mine")).unwrap();
    drain_pushes(&c, &mut raw, "sentinel");
    assert!(a.local_contains("k"));
    let _: () = raw.set("echa:k", "theirs").unwrap();
    eventually(PUSH_WAIT, "the foreign write's push", || {
        !a.local_contains("k")
    });
    assert_eq!(rt.block_on(a.get("k")).unwrap().as_deref(), Some("theirs"));
}

#[test]
fn reads_that_renew_the_ttl_fill_and_stay() {
    let server = Server::start();
    let c = renewing(&server, "echr", Duration::from_secs(60));
    let mut raw = server.raw();
    let _: () = redis::cmd("SET")
        .arg("echr:k")
        .arg("v")
        .arg("PX")
        .arg(5_000)
        .query(&mut raw)
        .unwrap();
    // A GETEX read: it renews the TTL and fills the L1; its echo leaves the entry.
    read_until_held(&c, "k", "v");
    let pttl: i64 = raw.pttl("echr:k").unwrap();
    assert!(pttl > 50_000, "GETEX renewed the TTL: {pttl} ms left");
    let missing = c.get("missing").unwrap();
    assert_eq!(missing, None);
    drain_pushes(&c, &mut raw, "sentinel");
    assert!(c.local_contains("k"), "the GETEX's echo dropped its entry");
    // A GETEX of a missing key changed nothing: no echo expected, and a later write of it by
    // another client is heard.
    foreign_write_is_heard(&c, &mut raw, "k", "theirs");
}

#[test]
fn a_write_that_did_not_apply_expects_no_echo() {
    let server = Server::start();
    let c: FlipCache<String, String> = server.cache("echn");
    let mut raw = server.raw();
    let _: () = raw.set("echn:k", "theirs").unwrap();
    // `NX` finds a value: nothing is written, no echo comes.
    let written = c.set_if_absent("k", "mine").unwrap();
    assert!(!written);
    assert_eq!(c.get("k").unwrap().as_deref(), Some("theirs"));
    assert!(c.local_contains("k"));
    // Were an echo still expected, this write's push would be taken for it.
    foreign_write_is_heard(&c, &mut raw, "k", "newer");
}

#[test]
fn refresh_on_get_renews_ttls_without_dropping_hot_entries() {
    let server = Server::start();
    // The TTL is renewed in the background every quarter of it (500 ms) while the key is read.
    let c = renewing(&server, "echt", Duration::from_secs(2));
    let mut raw = server.raw();
    let _: () = raw.set("echt:k", "v").unwrap();
    read_until_held(&c, "k", "v");
    let reads = c.stats().remote_hits;
    // 3 s of reads: past the first TTL, and about five renewals.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pttl: i64 = raw.pttl("echt:k").unwrap();
    assert!(pttl > 1_000, "the TTL was renewed: {pttl} ms left");
    // Each renewal reads the key again in the background (`GETEX`) rather than dropping it:
    // reads keep hitting the L1 (one may land while a renewal is in flight).
    let misses = c.stats().remote_hits - reads;
    assert!(misses <= 2, "{misses} reads went to Redis");
    drain_pushes(&c, &mut raw, "sentinel");
    assert!(c.local_contains("k"));
}

#[test]
fn own_writes_of_keys_the_blocking_read_connections_read_keep_their_entries() {
    let server = Server::start();
    // A key read into the L1 on the read connection, then updated.
    let (c, mut raw, _) = support::held_through_a_read_connection(&server, "echr", "held", "old");
    c.set("held", "new").unwrap();
    // Cache-aside: a miss (which Redis tracks for the read connection), then the value
    // written. Redis pushes that write twice: for the read connection and for the writer.
    assert_eq!(c.get("aside").unwrap(), None);
    c.set("aside", "computed").unwrap();
    drain_pushes(&c, &mut raw, "sentinel");
    for (k, v) in [("aside", "computed"), ("held", "new")] {
        let hits = c.stats().local_hits;
        assert_eq!(c.get(k).unwrap().as_deref(), Some(v));
        assert_eq!(
            c.stats().local_hits,
            hits + 1,
            "the pushes of `{k}`'s write dropped it"
        );
    }
    // Only the sentinel's second write dropped an entry (broadcasting, the writes of keys
    // not held yet are pushed too, and drop nothing).
    assert_eq!(c.stats().invalidations, 1);
    foreign_write_is_heard(&c, &mut raw, "aside", "theirs");
    foreign_write_is_heard(&c, &mut raw, "held", "theirs");
}
