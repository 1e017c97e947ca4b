//! Counters that mean what they say, one test per way they once did not (against a real,
//! private Redis): a fail-safe copy is a local hit and no error; a `get` that returns `None`
//! served nothing stale; `contains`, `len` and `keys` agree with `get` about stale and
//! undecodable entries, and count no bookkeeping key. The exact accounting of every counter
//! over a scripted mix, per front, is in `tests/metrics.rs`.

mod support;

use std::time::Duration;

use flipcache::{FlipCache, Stats};
use redis::Commands;
use support::{Server, eventually};

/// The change of each counter this file checks, from `before` to `after`.
fn moved(before: Stats, after: Stats) -> [(&'static str, u64); 6] {
    [
        ("local_hits", after.local_hits - before.local_hits),
        ("remote_hits", after.remote_hits - before.remote_hits),
        ("misses", after.misses - before.misses),
        ("stale_served", after.stale_served - before.stale_served),
        ("fail_safe", after.fail_safe - before.fail_safe),
        ("errors", after.errors - before.errors),
    ]
}

/// Writes `value` under `key` with a TTL inside the last 60 s of its life: stale for a cache
/// with `stale_for(60 s)`.
fn stale(raw: &mut redis::Connection, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(30_000)
        .query(raw)
        .unwrap();
}

/// During an outage, with `fail_safe`, the L1's copies answer: each is a local hit and a
/// fail-safe (stale) serve, and the calls that got them count no error (it used to count no
/// hit and an error per call).
#[test]
fn fail_safe_copies_are_local_hits_and_no_errors() {
    let mut server = Server::start();
    let c: FlipCache<String, String> = server
        .builder("cn_failsafe")
        .fail_safe(true)
        .build()
        .unwrap();
    c.set("k", "v").unwrap();
    eventually(Duration::from_secs(5), "k in the L1", || {
        c.local_contains("k")
    });
    server.stop();
    assert!(c.get("elsewhere").is_err(), "not in the L1: an error");
    let before = c.stats();
    for _ in 0..3 {
        assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    }
    assert_eq!(c.get_with("k", || "x".to_string()).unwrap(), "v");
    let moved = moved(before, c.stats());
    assert_eq!(
        moved,
        [
            ("local_hits", 4),
            ("remote_hits", 0),
            ("misses", 0),
            ("stale_served", 4),
            ("fail_safe", 4),
            ("errors", 0),
        ]
    );
}

/// A plain `get` of a stale entry returns `None` and counts a miss, not a stale serve (it
/// used to count one for the L1's stale entry, and a remote hit for Redis's); the loader
/// verbs serve it, counted as a stale local hit.
#[test]
fn a_get_of_a_stale_entry_serves_nothing_stale() {
    let server = Server::start();
    let c: FlipCache<String, String> = server
        .builder("cn_stale")
        .expire_time(Duration::from_secs(120))
        .stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut raw = server.raw();
    stale(&mut raw, "cn_stale:k", "old");
    // Read until the L1 holds it (broadcasting, the push of the write just before may stop
    // the first read's fill).
    eventually(Duration::from_secs(5), "the stale entry in the L1", || {
        assert_eq!(c.get("k").unwrap(), None, "read from Redis, stale");
        c.local_contains("k")
    });
    let before = c.stats();
    // Each read finds the L1's stale entry, and then Redis's.
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.get("k").unwrap(), None);
    let after_gets = c.stats();
    assert_eq!(
        moved(before, after_gets),
        [
            ("local_hits", 0),
            ("remote_hits", 0),
            ("misses", 2),
            ("stale_served", 0),
            ("fail_safe", 0),
            ("errors", 0),
        ]
    );
    assert_eq!(c.get_with("k", || "new".to_string()).unwrap(), "old");
    assert_eq!(
        moved(after_gets, c.stats()),
        [
            ("local_hits", 1),
            ("remote_hits", 0),
            ("misses", 0),
            ("stale_served", 1),
            ("fail_safe", 0),
            ("errors", 0),
        ]
    );
    // `get_many` reads it as `get` does.
    let _: () = raw.del("cn_stale:k").unwrap();
    stale(&mut raw, "cn_stale:m", "old");
    assert_eq!(c.get_many(&["m"]).unwrap(), vec![None]);
}

/// With `decode_errors_as_misses(true)` and `stale_for`, `contains`, `len` and `keys` say
/// what `get` says: an undecodable entry and a stale one are not there. Remembered absences,
/// tag indexes, leases and write traces are no keys of the cache either.
#[test]
fn contains_len_and_keys_agree_with_get() {
    let server = Server::start();
    for decode_misses in [true, false] {
        let name = format!("cn_agree_{decode_misses}");
        let c: FlipCache<String, u64> = server
            .builder(&name)
            .expire_time(Duration::from_secs(120))
            .stale_for(Duration::from_secs(60))
            .decode_errors_as_misses(decode_misses)
            .cache_absent(Duration::from_secs(60))
            .distributed_lock(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut raw = server.raw();
        c.set_with_tags("good", 1, ["t"]).unwrap();
        assert_eq!(c.optionally_get_with("gone", || None::<u64>).unwrap(), None);
        assert_eq!(c.get_with("loaded", || 2).unwrap(), 2);
        assert!(c.delete("loaded").unwrap(), "leaves a write trace");
        let _: () = raw.set(format!("{name}:bad"), "not a number").unwrap();
        stale(&mut raw, &format!("{name}:old"), "3");

        assert_eq!(c.get("old").unwrap(), None);
        assert!(!c.contains("old").unwrap(), "stale: not there, as for get");
        assert!(!c.contains("gone").unwrap(), "remembered absent: not there");
        assert!(c.contains("good").unwrap());
        let mut keys = c.keys().unwrap();
        keys.sort();
        if decode_misses {
            assert_eq!(c.get("bad").unwrap(), None);
            assert!(!c.contains("bad").unwrap(), "undecodable reads as absent");
            assert_eq!(keys, ["good"]);
            assert_eq!(c.len().unwrap(), 1);
        } else {
            // `get` fails on it: it is there, and says so.
            assert!(c.get("bad").unwrap_err().is_decode());
            assert!(c.contains("bad").unwrap());
            assert_eq!(keys, ["bad", "good"]);
            assert_eq!(c.len().unwrap(), 2);
        }
    }
}

/// A cache without `stale_for` or `decode_errors_as_misses` answers `contains` with one
/// `EXISTS` and `len` with `SCAN` alone: nothing to judge, so no value is read.
#[test]
fn a_plain_cache_counts_its_keys_without_reading_values() {
    let server = Server::start();
    let c: FlipCache<String, u64> = server.cache("cn_plain");
    let mut raw = server.raw();
    let _: () = raw.set("cn_plain:bad", "not a number").unwrap();
    c.set("good", 1).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut raw)
        .unwrap();
    assert!(c.contains("bad").unwrap());
    assert_eq!(c.len().unwrap(), 2);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut raw)
        .unwrap();
    assert!(!info.contains("cmdstat_get:"), "{info}");
    assert!(!info.contains("cmdstat_mget:"), "{info}");
}
