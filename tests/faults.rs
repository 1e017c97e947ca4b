//! Fault injection against real, private servers: a paused or sleeping server, killed
//! connections, ACL users and wrong passwords, and awkward input from users and other clients.
//! Each test says what it proves; each fails if the cache does nothing.

mod support;

use std::time::{Duration, Instant};

use flipcache::{Error, FlipCache};
use redis::Commands;
use support::{Server, eventually};

/// A server that stops answering (CLIENT PAUSE) makes calls fail with `Error::Timeout` in
/// about the configured time, never hang; the keep-alive notices and empties the L1 (its
/// invalidations could be stuck too); after the pause the cache works again.
#[test]
fn a_paused_server_gives_timeouts_not_hangs() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("paused")
        .timeout(Duration::from_millis(300))
        .build()
        .expect("build");
    c.set("k", "v").unwrap();
    assert_eq!(c.local_len(), 1);
    let flushes = c.stats().flushes;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query(&mut server.raw())
        .unwrap();
    let start = Instant::now();
    let err = c.get("missing").unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(err.key(), Some("paused:missing"));
    let err = c.set("k", "w").unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        c.local_len(),
        0,
        "a write with an unknown outcome leaves no local copy"
    );
    eventually(
        Duration::from_secs(5),
        "the keep-alive to give up on the connection",
        || c.stats().flushes > flushes,
    );
    eventually(
        Duration::from_secs(10),
        "the server to answer again",
        || c.get("k").is_ok(),
    );
    c.set("k", "x").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("x"));
}

/// DEBUG SLEEP blocks the whole server: same contract as a pause.
#[test]
fn a_sleeping_server_gives_timeouts() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("sleepy")
        .timeout(Duration::from_millis(200))
        .build()
        .expect("build");
    c.set("k", "v").unwrap();
    let url = server.url();
    let sleeper = std::thread::spawn(move || {
        let mut raw = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query(&mut raw)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let err = c.delete("k").unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() < Duration::from_millis(800));
    sleeper.join().unwrap();
    eventually(Duration::from_secs(10), "recovery", || c.get("k").is_ok());
}

/// Killing our connection server-side: the cache reconnects by itself, the L1 was emptied, and
/// a write made while we were disconnected is not hidden by an old local copy.
#[test]
fn a_killed_connection_reconnects_without_stale_reads() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("killed")
        .timeout(Duration::from_millis(1000))
        .build()
        .expect("build");
    c.set("k", "old").unwrap();
    let mut raw = server.raw();
    let flushes = c.stats().flushes;
    support::kill_clients(&mut raw);
    let _: () = raw.set("killed:k", "new").unwrap();
    eventually(Duration::from_secs(5), "the drop to be noticed", || {
        c.stats().flushes > flushes
    });
    assert_eq!(c.get("k").unwrap().as_deref(), Some("new"));
    // Tracking is back on the new connection.
    support::read_until_held(&c, "k", "new");
    let before = c.stats().invalidations;
    let _: () = raw.set("killed:k", "newer").unwrap();
    eventually(
        Duration::from_secs(5),
        "a push on the new connection",
        || c.stats().invalidations > before,
    );
    assert_eq!(c.get("k").unwrap().as_deref(), Some("newer"));
}

/// With key-based tracking, what the blocking front reads on its own connection is tracked by
/// that connection. Killed alone (the shared connection lives on), Redis forgets what it
/// tracked without a push: its socket shows the close at once (it is looked at every 10 ms,
/// no ping needed), and the L1 is emptied, so another client's write right after is not
/// hidden: every read that starts 50 ms after that write was acknowledged returns it (the
/// keep-alive's ping found the close up to 500 ms late). (Broadcasting, the shared connection
/// hears every write: the same checks hold without a kill.)
#[test]
fn a_killed_read_connection_hides_no_write() {
    let server = Server::start();
    let (c, mut raw, reader) =
        support::held_through_a_read_connection(&server, "rkill", "k", "old");
    let flushes = c.stats().flushes;
    if let Some(id) = reader {
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query(&mut raw)
            .unwrap();
        assert_eq!(killed, 1);
    }
    let _: () = raw.set("rkill:k", "new").unwrap();
    let written = std::time::Instant::now();
    let mut late = Vec::new();
    while written.elapsed() < Duration::from_millis(300) {
        let started = written.elapsed();
        let got = c.get("k");
        if started > Duration::from_millis(50)
            && !matches!(got.as_ref().map(|v| v.as_deref()), Ok(Some("new")))
        {
            late.push((started, got));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        late.is_empty(),
        "reads past 50 ms that missed the write: {late:?}"
    );
    if reader.is_some() {
        assert!(c.stats().flushes > flushes, "the L1 was not emptied");
    }
}

/// The server's idle `timeout` closes connections idle that long: the keep-alive pings the
/// blocking front's idle read connections (as it does the shared one) so that those that track
/// what they read stay up, and their pushes keep coming.
#[test]
fn read_connections_outlive_the_servers_idle_timeout() {
    let server = Server::start();
    let (c, mut raw, reader) =
        support::held_through_a_read_connection(&server, "ridle", "k", "old");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("timeout")
        .arg(1)
        .query(&mut raw)
        .unwrap();
    let flushes = c.stats().flushes;
    std::thread::sleep(Duration::from_millis(3000));
    // This test's own connection was idle: closed.
    let mut raw = server.raw();
    let _: () = raw.set("ridle:k", "new").unwrap();
    eventually(
        Duration::from_secs(5),
        "the foreign write to be seen",
        || c.get("k").unwrap().as_deref() == Some("new"),
    );
    assert_eq!(
        c.stats().flushes,
        flushes,
        "a connection was lost to the idle timeout"
    );
    if let Some(id) = reader {
        let alive: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("ID")
            .arg(id)
            .query(&mut raw)
            .unwrap();
        assert!(
            alive.contains(&format!("id={id} ")),
            "the read connection was closed"
        );
    }
}

/// ACL users work (tracking included); a wrong password is a clear error at build time, fast.
#[test]
fn acl_users_and_wrong_passwords() {
    let server = Server::start();
    let mut raw = server.raw();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all"])
        .query(&mut raw)
        .unwrap();
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let good = format!("redis://app:s3cret@127.0.0.1:{port}");
    let c: FlipCache<String, String> = FlipCache::builder("acl")
        .tracking(support::tracking())
        .redis_url(&good)
        .build()
        .unwrap();
    c.set("k", "v").unwrap();
    support::read_until_held(&c, "k", "v");
    let before = c.stats().invalidations;
    let _: () = raw.set("acl:k", "w").unwrap();
    eventually(Duration::from_secs(5), "a push for an ACL user", || {
        c.stats().invalidations > before
    });
    assert_eq!(c.get("k").unwrap().as_deref(), Some("w"));

    let bad = format!("redis://app:wrong@127.0.0.1:{port}");
    let start = Instant::now();
    let err = FlipCache::<String, String>::builder("acl_bad")
        .tracking(support::tracking())
        .redis_url(&bad)
        .build()
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(err, Error::Redis { .. }), "{err}");
    // The message names the cache; Redis's refusal is its source.
    let source = std::error::Error::source(&err).expect("redis-rs's error");
    let text = format!("{err}: {source}").to_lowercase();
    assert!(
        text.contains("acl_bad") && (text.contains("auth") || text.contains("password")),
        "{err}"
    );
}

/// A user not allowed to run CLIENT (so no tracking): the cache still works, warns, and falls
/// back to TTL-bounded L1 entries instead of failing.
#[test]
fn a_user_without_client_permission_falls_back_to_ttl_bounded_entries() {
    let server = Server::start();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "ro", "on", ">pw", "~*", "&*", "+@all", "-client"])
        .query(&mut server.raw())
        .unwrap();
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let c: FlipCache<String, String> = FlipCache::builder("noclient")
        .tracking(support::tracking())
        .expire_time(Duration::from_millis(300))
        .redis_url(&format!("redis://ro:pw@127.0.0.1:{port}"))
        .build()
        .unwrap();
    c.set("k", "v").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.get("k").unwrap(), None, "the TTL still bounds the L1");
}

/// Big values, empty keys, keys that are not UTF-8, and separator characters: clear results,
/// no panic.
#[test]
fn awkward_input_everywhere() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("odd:na*me")
        .timeout(Duration::from_millis(5000))
        .build()
        .expect("build");
    let big = "x".repeat(16 * 1024 * 1024);
    c.set("big", big.clone()).unwrap();
    let c2 = FlipCache::<String, String>::builder("odd:na*me")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build()
        .unwrap();
    assert_eq!(c2.get("big").unwrap().map(|v| v.len()), Some(big.len()));
    c.set("", "empty key").unwrap();
    assert_eq!(c2.get("").unwrap().as_deref(), Some("empty key"));
    c.set("a:b:c", "colons").unwrap();
    c.set("sp ace\n\u{0}", "control chars").unwrap();
    assert_eq!(
        c2.get("sp ace\n\u{0}").unwrap().as_deref(),
        Some("control chars")
    );
    let mut raw = server.raw();
    let _: () = raw
        .set(b"odd:na*me:\xff\xfe".as_slice(), "not utf-8 key")
        .unwrap();
    let _: () = raw.set("odd:naXme:other", "not ours").unwrap();
    let mut keys = c.keys().unwrap();
    keys.sort();
    assert_eq!(
        keys,
        ["", "a:b:c", "big", "sp ace\n\u{0}"],
        "non-UTF-8 keys are skipped, globs escaped"
    );
    assert_eq!(c.len().unwrap(), 4);
    // An invalidation for the non-UTF-8 key is ignored without harm. (Broadcast only: with
    // key-based tracking a process hears only of keys it read, and no cache reads a key that
    // does not parse; the router is the same in both modes.)
    if support::tracking() == flipcache::Tracking::Broadcast {
        let _: () = raw.set(b"odd:na*me:\xff\xfe".as_slice(), "again").unwrap();
        // Handled once a later push is (pushes are handled in order).
        support::drain_pushes(&c, &mut raw, "sentinel");
    }
    assert_eq!(c.get("a:b:c").unwrap().as_deref(), Some("colons"));
    // Integer caches skip keys that are not canonical integers.
    let n: FlipCache<u64, u64> = FlipCache::builder("oddn")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build()
        .unwrap();
    n.set(7, 7).unwrap();
    let _: () = raw.set("oddn:07", "1").unwrap();
    let _: () = raw.set("oddn:x", "1").unwrap();
    assert_eq!(n.keys().unwrap(), [7]);
}

/// `lazy_connect`: a cache built while Redis is down works once it is up, tracking included
/// (registered by the first connection, before anything is filled).
#[test]
fn a_lazily_connected_cache_comes_up_with_redis() {
    let mut server = Server::start();
    server.stop();
    let c: FlipCache<String, String> = FlipCache::builder("lazy")
        .tracking(support::tracking())
        .lazy_connect(true)
        .timeout(Duration::from_millis(300))
        .redis_url(&server.url())
        .build()
        .expect("lazy build succeeds without Redis");
    assert!(c.get("k").unwrap_err().is_remote());
    let err = FlipCache::<String, String>::builder("eager")
        .tracking(support::tracking())
        .timeout(Duration::from_millis(300))
        .redis_url(&server.url())
        .build()
        .unwrap_err();
    assert!(
        err.is_remote(),
        "without lazy_connect the build fails: {err}"
    );
    server.restart();
    eventually(Duration::from_secs(5), "the first call to connect", || {
        c.set("k", "v").is_ok()
    });
    assert!(c.local_contains("k"));
    let before = c.stats().invalidations;
    let _: () = server.raw().set("lazy:k", "w").unwrap();
    eventually(
        Duration::from_secs(5),
        "a push on the lazy connection",
        || c.stats().invalidations > before,
    );
    assert_eq!(c.get("k").unwrap().as_deref(), Some("w"));
}
