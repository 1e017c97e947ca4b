//! Cross-process coherence: Redis's invalidation pushes keep the L1 fresh against foreign
//! writers (a raw connection, another process), FLUSHDB, expiry, restarts, and races.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, eventually};

const PUSH_WAIT: Duration = Duration::from_secs(5);

/// Waits until a push has dropped `key`'s L1 entry (counted in `invalidations`, so more than
/// `before` of them), or the L1 does not hold `key` (a read that raced the write may not have
/// filled it: then the next read goes to Redis anyway).
fn await_push(c: &FlipCache<String, String>, key: &str, before: u64) {
    eventually(PUSH_WAIT, "the invalidation push", || {
        c.stats().invalidations > before || !c.local_contains(key)
    });
}

fn local_hit(c: &FlipCache<String, String>, key: &str) -> bool {
    let hits = c.stats().local_hits;
    c.get(key).unwrap();
    c.stats().local_hits > hits
}

#[test]
fn foreign_writes_deletes_and_expiry_are_seen() {
    let server = Server::start();
    let c = server.cache::<String, String>("co");
    let mut raw = server.raw();
    c.set("k", "v1").unwrap();
    assert!(local_hit(&c, "k"));

    let before = c.stats().invalidations;
    let _: () = raw.set("co:k", "v2").unwrap();
    await_push(&c, "k", before);
    assert!(!c.local_keys().contains(&"k".to_string()));
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v2"));

    let before = c.stats().invalidations;
    let _: () = raw.del("co:k").unwrap();
    await_push(&c, "k", before);
    assert_eq!(c.get("k").unwrap(), None);

    // Expiry set by someone else after our read: the EXPIRE itself invalidates, and the next
    // fill carries the new TTL.
    c.set("e", "x").unwrap();
    assert!(local_hit(&c, "e"));
    let before = c.stats().invalidations;
    let _: () = raw.pexpire("co:e", 150).unwrap();
    await_push(&c, "e", before);
    assert_eq!(c.get("e").unwrap().as_deref(), Some("x"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.get("e").unwrap(), None);
}

#[test]
fn flushdb_empties_the_l1() {
    let server = Server::start();
    let c = server.cache::<String, String>("fl");
    c.set_many([("a", "1"), ("b", "2")]).unwrap();
    assert_eq!(c.local_len(), 2);
    let flushes = c.stats().flushes;
    let _: () = redis::cmd("FLUSHDB").query(&mut server.raw()).unwrap();
    eventually(PUSH_WAIT, "the flush push", || c.stats().flushes > flushes);
    assert_eq!(c.local_len(), 0);
    assert_eq!(c.get("a").unwrap(), None);
}

#[test]
fn nested_names_are_both_invalidated() {
    let server = Server::start();
    let p = server.cache::<String, String>("p");
    let pq = server.cache::<String, String>("p:q");
    p.set("q:x", "1").unwrap();
    assert_eq!(pq.get("x").unwrap().as_deref(), Some("1"));
    let before = pq.stats().invalidations;
    let _: () = server.raw().set("p:q:x", "2").unwrap();
    await_push(&pq, "x", before);
    eventually(PUSH_WAIT, "p's invalidation", || {
        !p.local_keys().contains(&"q:x".to_string())
    });
    assert_eq!(p.get("q:x").unwrap().as_deref(), Some("2"));
    assert_eq!(pq.get("x").unwrap().as_deref(), Some("2"));
    // A cache created after another whose prefix it covers still gets pushes.
    let late = server.cache::<String, String>("l:m");
    let short = server.cache::<String, String>("l");
    late.set("k", "1").unwrap();
    short.set("m:k", "2").unwrap(); // same Redis key, written through the other cache
    assert_eq!(late.get("k").unwrap().as_deref(), Some("2"));
    let before = late.stats().invalidations;
    let _: () = server.raw().set("l:m:k", "3").unwrap();
    await_push(&late, "k", before);
    assert_eq!(late.get("k").unwrap().as_deref(), Some("3"));
    assert_eq!(short.get("m:k").unwrap().as_deref(), Some("3"));
}

#[test]
fn coherence_off_keeps_the_originals_behaviour() {
    let server = Server::start();
    let c: FlipCache<String, String> = FlipCache::builder("off")
        .tracking(support::tracking())
        .coherence(false)
        .redis_url(&server.url())
        .build()
        .unwrap();
    c.set("k", "v1").unwrap();
    let _: () = server.raw().set("off:k", "v2").unwrap();
    // Give a push every chance to arrive: none may, since tracking is off for this cache.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v1"));
    assert_eq!(c.stats().invalidations, 0);
}

#[test]
fn a_restarted_server_never_serves_pre_restart_data() {
    let mut server = Server::start();
    let c = server.cache::<String, String>("rs");
    c.set("k", "before").unwrap();
    assert!(local_hit(&c, "k"));
    server.restart();
    let _: () = server.raw().set("rs:k", "after").unwrap();
    // The first read after the restart may fail (the old socket is gone); none may say "before".
    // Reconnects back off while Redis is down: calls fail fast until an attempt succeeds.
    let mut seen = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match c.get("k") {
            Ok(v) => {
                seen = v;
                break;
            }
            Err(e) => assert!(e.is_remote(), "{e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen.as_deref(), Some("after"));
    // And the new connection tracks again.
    assert!(local_hit(&c, "k"));
    let before = c.stats().invalidations;
    let _: () = server.raw().set("rs:k", "again").unwrap();
    await_push(&c, "k", before);
    assert_eq!(c.get("k").unwrap().as_deref(), Some("again"));
}

#[test]
fn killing_our_connection_empties_the_l1_and_reconnects() {
    let server = Server::start();
    let c = server.cache::<String, String>("ck");
    c.set("k", "v").unwrap();
    let flushes = c.stats().flushes;
    support::kill_clients(&mut server.raw());
    eventually(PUSH_WAIT, "the lost connection to be noticed", || {
        c.stats().flushes > flushes
    });
    assert_eq!(c.local_len(), 0);
    let _: () = server.raw().set("ck:k", "w").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("w"));
}

/// Thousands of interleavings of reads with a foreign writer. The guarantee checked: once a
/// foreign write is acknowledged and its push processed, no read (by any thread) that starts
/// afterwards returns an older value. Reader threads keep reads in flight across every push.
#[test]
fn no_read_returns_older_data_once_the_push_is_processed() {
    let server = Server::start();
    // Pushes processed, counted by their events (`invalidations` counts only the entries they
    // drop, and a push may find the key's entry gone already).
    let pushes = Arc::new(AtomicU64::new(0));
    let heard = pushes.clone();
    let c: FlipCache<String, u64> = FlipCache::builder("race")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .on_event(move |e: &flipcache::Event| {
            if matches!(e, flipcache::Event::Invalidated { .. }) {
                heard.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let mut raw = server.raw();
    let _: () = raw.set("race:k", 0u64).unwrap();
    // Read once before the writes start: with key-based tracking, Redis reports writes only to
    // processes that read the key (each read after an invalidation tracks it again).
    assert_eq!(c.get("k").unwrap(), Some(0));
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (c, stop, pushed) = (c.clone(), stop.clone(), pushed.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let floor = pushed.load(Ordering::SeqCst);
                    let v = c.get("k").unwrap().unwrap_or(0);
                    assert!(
                        v >= floor,
                        "write {floor} was pushed before this read began, yet it returned {v}"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    const WRITES: u64 = 3000;
    for i in 1..=WRITES {
        let before = pushes.load(Ordering::SeqCst);
        let _: () = raw.set("race:k", i).unwrap();
        eventually(PUSH_WAIT, "the push", || {
            pushes.load(Ordering::SeqCst) > before
        });
        // With key-based tracking one write may be pushed several times (once per connection
        // of ours that read the key: the shared one and the redirected read connections), so
        // the count above may have moved for the previous write's last push. A round trip on
        // the shared connection is a barrier: Redis queued every push of this write on it
        // before this command's reply, and they are processed in order.
        c.ttl("k").unwrap();
        pushed.store(i, Ordering::SeqCst);
        assert_eq!(
            c.get("k").unwrap(),
            Some(i),
            "write {i} acknowledged and pushed, yet not read"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(
        reads > WRITES,
        "readers should have raced the writer ({reads} reads)"
    );
    let s = c.stats();
    assert!(s.local_hits > 0 && s.remote_hits > 0, "{s:?}");
}

/// A second process running the crate: its writes reach our L1 through Redis.
#[test]
fn another_process_writes_are_seen() {
    let server = Server::start();
    let c = server.cache::<String, String>("xproc");
    c.set("k", "parent").unwrap();
    assert!(local_hit(&c, "k"));
    let before = c.stats().invalidations;
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLIPCACHE_CHILD_URL", server.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("child wrote"),
        "the child must really have run"
    );
    await_push(&c, "k", before);
    assert_eq!(c.get("k").unwrap().as_deref(), Some("child"));
}

/// The child's side of `another_process_writes_are_seen`, which starts it with `--ignored`
/// and the server's URL; ignored in a normal run, and it fails if started any other way.
#[test]
#[ignore = "the child process of `another_process_writes_are_seen`, which runs it"]
fn child_process_writer() {
    let url = std::env::var("FLIPCACHE_CHILD_URL")
        .expect("set by `another_process_writes_are_seen`, which runs this test");
    let c: FlipCache<String, String> = FlipCache::builder("xproc").redis_url(&url).build().unwrap();
    c.set("k", "child").unwrap();
    println!("child wrote");
}

/// Key-based tracking: when Redis's tracking table is full (`tracking-table-max-keys`) it forgets
/// keys and sends an invalidation for each; those simply leave the L1, and every key still held
/// is still tracked, so later foreign writes reach it. (A trim made by the shared connection's
/// own command is `a_trim_during_the_shared_connections_own_command_still_invalidates`.)
#[test]
fn a_full_tracking_table_only_drops_l1_entries() {
    if support::tracking() != flipcache::Tracking::Keys {
        return; // broadcasting keeps no table
    }
    let server = Server::start();
    let mut raw = server.raw();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tracking-table-max-keys")
        .arg(5)
        .query(&mut raw)
        .unwrap();
    // A full table before the cache connects: trims start with its first reads.
    let mut filler = server.raw();
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query(&mut filler)
        .unwrap();
    for i in 0..5 {
        let _: Option<String> = filler.get(format!("filler:{i}")).unwrap();
    }
    let c: FlipCache<String, String> = server.cache("tt");
    for i in 0..50 {
        let _: () = raw.set(format!("tt:{i}"), "old").unwrap();
    }
    for i in 0..50 {
        assert_eq!(c.get(&i.to_string()).unwrap().as_deref(), Some("old"));
    }
    // Redis trims its table a little per event-loop turn: keep it turning.
    eventually(PUSH_WAIT, "the table to be trimmed", || {
        let _: () = redis::cmd("PING").query(&mut raw).unwrap();
        c.local_len() <= 5
    });
    assert!(c.stats().invalidations > 0);
    for i in 0..50 {
        let _: () = raw.set(format!("tt:{i}"), "new").unwrap();
    }
    eventually(PUSH_WAIT, "every held key to be invalidated", || {
        c.local_len() == 0
    });
    for i in 0..50 {
        assert_eq!(c.get(&i.to_string()).unwrap().as_deref(), Some("new"));
    }
}

/// Key-based tracking: Redis trims a full tracking table at the start of whichever command
/// comes next, and (since 7.0.5) skips the invalidations of a `NOLOOP` client whose own command
/// that is, while still forgetting its keys. What the shared connection tracked (keys this
/// process wrote, keys read through it: the async front, and the blocking front before its
/// read connections exist) would then never hear of later foreign writes. The connection
/// tracks without `NOLOOP`, so the trim is heard at once: here the table goes from a few keys
/// to far over its bound within one command, and once the pushes Redis sent meanwhile are
/// handled, every key reads the foreign value.
#[test]
fn a_trim_during_the_shared_connections_own_command_still_invalidates() {
    if support::tracking() != flipcache::Tracking::Keys {
        return; // broadcasting keeps no table
    }
    // A slow server cron (which trims too, outside any client's command): the trim is made by
    // the shared connection's next command.
    let server = Server::start_with(&["--hz".into(), "1".into()]);
    let mut raw = server.raw();
    let c: FlipCache<String, String> = server.cache("tn");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt.block_on(server.cache_async::<String, String>("tn"));
    // Written keys are tracked for the shared connection (the write script's `PTTL`)...
    for i in 0..10 {
        c.set(i.to_string(), "old").unwrap();
    }
    // ... and so are the async front's reads.
    for i in 10..20 {
        let _: () = raw.set(format!("tn:{i}"), "old").unwrap();
        let v = rt.block_on(a.get(&i.to_string())).unwrap();
        assert_eq!(v.as_deref(), Some("old"));
    }
    assert_eq!((c.local_len(), a.local_len()), (10, 10));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tracking-table-max-keys")
        .arg(1)
        .query(&mut raw)
        .unwrap();
    // The shared connection's next command (this write) finds the table over its limit.
    c.set("trigger", "x").unwrap();
    for i in 0..20 {
        let _: () = raw.set(format!("tn:{i}"), "new").unwrap();
    }
    // Every push sent so far handled (the async handle shares the connection): every key is
    // current, at once.
    support::drain_pushes(&c, &mut raw, "sentinel");
    for i in 0..10 {
        assert_eq!(
            c.get(&i.to_string()).unwrap().as_deref(),
            Some("new"),
            "key {i}"
        );
    }
    for i in 10..20 {
        let v = rt.block_on(a.get(&i.to_string())).unwrap();
        assert_eq!(v.as_deref(), Some("new"), "key {i}");
    }
}
