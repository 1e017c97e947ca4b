//! No stale window across reconnects (issue #26): after a Redis restart (data kept or lost) or
//! a killed tracking connection, followed at once by another client's `SET`, every read that
//! starts more than 50 ms after that `SET` was acknowledged returns the new value, without an
//! error: in this process (the blocking front) and in a second, real process (the async front),
//! with `fail_safe` off and on, with readers idle through the outage or reading through it.

mod support;

use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, child_said, eventually, now_ms, spawn_child};

/// The longest a read may still see the old value (or an error) after the new one was written.
const WINDOW_MS: i64 = 50;
/// How long the readers go on after the write.
const AFTER_MS: i64 = 400;
/// How long a restarted server stays down.
const OUTAGE: Duration = Duration::from_millis(1700);

/// What a reader saw: for each read, when it started (unix ms) and whether it returned the
/// expected value.
type Samples = Vec<(i64, bool)>;

/// The last read that started after `set_at` and did not return the new value, in ms after
/// `set_at` (`None`: every one did).
fn last_bad(samples: &Samples, set_at: i64) -> Option<i64> {
    samples
        .iter()
        .filter(|(at, good)| *at >= set_at && !good)
        .map(|(at, _)| at - set_at)
        .max()
}

/// Reads `k` every millisecond while `active`, until `deadline` (unix ms, once known); a read
/// is good if it returned `expect`.
fn read_loop(
    get: impl Fn() -> Result<Option<String>, flipcache::Error>,
    expect: &str,
    active: impl Fn() -> bool,
    deadline: impl Fn() -> Option<i64>,
) -> Samples {
    let mut samples = Samples::new();
    loop {
        if let Some(end) = deadline()
            && now_ms() > end
        {
            return samples;
        }
        if active() {
            let at = now_ms();
            let got = get();
            samples.push((at, matches!(got, Ok(Some(ref v)) if v == expect)));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The child: an async cache of the same name; holds `k` in its L1, says so in the
/// coordination server, then reads as the parent says (`busy`: all along; else from the write
/// on) and prints the last read that missed the new value.
#[test]
#[ignore = "a child process of the reconnect tests"]
fn child_reader() {
    let url = std::env::var("RC_URL").expect("run only as a child process");
    let coord = std::env::var("RC_COORD").expect("run only as a child process");
    let name = std::env::var("RC_NAME").expect("run only as a child process");
    let fail_safe = std::env::var("RC_FAIL_SAFE").expect("child") == "1";
    let busy = std::env::var("RC_BUSY").expect("child") == "1";
    let expect = std::env::var("RC_EXPECT").expect("child");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = rt.block_on(support::fault_cache_async(
        &url,
        &name,
        fail_safe,
        Duration::from_secs(60),
    ));
    rt.block_on(async {
        while !cache.local_contains("k") {
            assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("old"));
        }
    });
    let mut c = redis::Client::open(coord.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.set(format!("{name}:ready"), 1).unwrap();
    let set_at = || {
        redis::Client::open(coord.as_str())
            .ok()
            .and_then(|c| c.get_connection().ok())
            .and_then(|mut c| c.get::<_, Option<i64>>(format!("{name}:set_at")).ok())
            .flatten()
    };
    let known = std::cell::Cell::new(None);
    let set = || {
        if known.get().is_none() {
            known.set(set_at());
        }
        known.get()
    };
    let samples = read_loop(
        || rt.block_on(cache.get("k")),
        &expect,
        || busy || set().is_some(),
        || set().map(|s| s + AFTER_MS),
    );
    let at = set().unwrap();
    println!(
        "RC_CHILD last_bad {:?} reads {}",
        last_bad(&samples, at),
        samples.iter().filter(|(t, _)| *t >= at).count()
    );
}

/// What breaks the link in a scenario.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The server restarts with its data (the old value is there again when it answers).
    RestartKept,
    /// The server restarts empty.
    RestartLost,
    /// `CLIENT KILL` of every connection of the caches (the tracking ones included).
    KillConnections,
}

/// A server, a coordination server, this process's blocking cache `name` and a child
/// process's async cache of that name, both holding `k` = `old` in their L1s; the child reads
/// as `busy` says and expects `expect` once the parent publishes when it wrote.
struct Setup {
    server: Server,
    coord: Server,
    name: String,
    rkey: String,
    cache: FlipCache<String, String>,
    child: support::ChildGuard,
}

fn setup(name: String, fail_safe: bool, busy: bool, expect: &str) -> Setup {
    let server = Server::start();
    let coord = Server::start();
    let rkey = format!("{name}:k");
    let _: () = server.raw().set(&rkey, "old").unwrap();
    let cache: FlipCache<String, String> = server
        .builder(&name)
        .timeout(Duration::from_millis(200))
        .fail_safe(fail_safe)
        .expire_time(Duration::from_secs(60))
        .build()
        .unwrap();
    eventually(Duration::from_secs(5), "the L1 to hold k", || {
        cache.get("k").unwrap();
        cache.local_contains("k")
    });
    let child = spawn_child(
        "child_reader",
        &[
            ("RC_URL", server.url()),
            ("RC_COORD", coord.url()),
            ("RC_NAME", name.clone()),
            ("RC_FAIL_SAFE", if fail_safe { "1" } else { "0" }.into()),
            ("RC_BUSY", if busy { "1" } else { "0" }.into()),
            ("RC_EXPECT", expect.into()),
            (
                "FLIPCACHE_TEST_TRACKING",
                std::env::var("FLIPCACHE_TEST_TRACKING").unwrap_or_default(),
            ),
        ],
    );
    let mut c = coord.raw();
    eventually(Duration::from_secs(30), "the child to hold k", || {
        c.exists::<_, bool>(format!("{name}:ready"))
            .unwrap_or(false)
    });
    Setup {
        server,
        coord,
        name,
        rkey,
        cache,
        child,
    }
}

/// Checks what both processes read after `at` (unix ms): nothing but the expected value past
/// [`WINDOW_MS`].
fn check(what: &str, samples: &Samples, at: i64, child: support::ChildGuard) {
    let out = child.output();
    let said = child_said("child_reader", &out, "RC_CHILD last_bad ");
    let here = last_bad(samples, at);
    let reads = samples.iter().filter(|(t, _)| *t >= at).count();
    println!("{what}: last bad read here {here:?} ms, there {said} after the write");
    assert!(reads > 50, "{what}: {reads} reads after the write");
    assert!(
        here.is_none_or(|ms| ms <= WINDOW_MS),
        "{what}: this process read an older value or an error {here:?} ms after the write"
    );
    let child_bad: Option<i64> = said
        .split_whitespace()
        .next()
        .and_then(|s| s.strip_prefix("Some("))
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.parse().ok());
    assert!(
        said.starts_with("None") || child_bad.is_some_and(|ms| ms <= WINDOW_MS),
        "{what}: the other process read an older value or an error after the write: {said}"
    );
}

fn scenario(fault: Fault, fail_safe: bool, busy: bool) {
    let what = format!("{fault:?}, fail_safe {fail_safe}, busy {busy}");
    let Setup {
        mut server,
        coord,
        name,
        rkey,
        cache,
        child,
    } = setup(
        format!("rc_{fault:?}_{fail_safe}_{busy}").to_lowercase(),
        fail_safe,
        busy,
        "new",
    );
    let mut c = coord.raw();
    let set_at = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let reader = {
        let (cache, set_at) = (cache.clone(), set_at.clone());
        std::thread::spawn(move || {
            let at = || Some(set_at.load(std::sync::atomic::Ordering::Acquire)).filter(|&a| a > 0);
            read_loop(
                || cache.get("k"),
                "new",
                || busy || at().is_some(),
                || at().map(|s| s + AFTER_MS),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    match fault {
        Fault::RestartKept | Fault::RestartLost => {
            // Long enough for reconnects to back off as far as they do.
            server.stop();
            std::thread::sleep(OUTAGE);
            server.restart();
            if let Fault::RestartKept = fault {
                let _: () = server.raw().set(&rkey, "old").unwrap();
            }
        }
        Fault::KillConnections => {
            support::kill_clients(&mut server.raw());
        }
    }
    // Another client writes the new value right away.
    let _: () = server.raw().set(&rkey, "new").unwrap();
    let at = now_ms();
    set_at.store(at, std::sync::atomic::Ordering::Release);
    let _: () = c.set(format!("{name}:set_at"), at).unwrap();
    let samples = reader.join().unwrap();
    check(&what, &samples, at, child);
}

#[test]
fn a_restart_with_data_kept_hides_no_write_from_idle_readers() {
    scenario(Fault::RestartKept, false, false);
    scenario(Fault::RestartKept, true, false);
}

#[test]
fn a_restart_with_data_kept_hides_no_write_from_busy_readers() {
    scenario(Fault::RestartKept, false, true);
    scenario(Fault::RestartKept, true, true);
}

#[test]
fn a_restart_with_data_lost_hides_no_write() {
    for (fail_safe, busy) in [(false, false), (true, false), (false, true), (true, true)] {
        scenario(Fault::RestartLost, fail_safe, busy);
    }
}

#[test]
fn killed_tracking_connections_hide_no_write() {
    for (fail_safe, busy) in [(false, false), (true, true)] {
        scenario(Fault::KillConnections, fail_safe, busy);
    }
}

/// A write that timed out while the server was frozen (`CLIENT PAUSE` past the timeout) and
/// ran when it resumed: served by both processes at once (with fail-safe too); a write that
/// timed out and never ran (the frozen server killed, restarted with its data): never served.
#[test]
fn ambiguous_writes_stay_safe() {
    for fail_safe in [false, true] {
        for ran in [true, false] {
            let what = format!("a timed-out write that ran: {ran}, fail_safe {fail_safe}");
            let expect = if ran { "new" } else { "old" };
            let Setup {
                mut server,
                coord,
                name,
                rkey,
                cache,
                child,
            } = setup(
                format!("rc_ambiguous_{fail_safe}_{ran}"),
                fail_safe,
                true,
                expect,
            );
            let pause_ms = 600;
            let _: () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(pause_ms)
                .arg("ALL")
                .query(&mut server.raw())
                .unwrap();
            let paused_at = now_ms();
            let err = cache.set("k", "new").unwrap_err();
            assert!(err.is_timeout(), "{what}: {err}");
            assert!(
                !cache.local_contains("k"),
                "{what}: an unknown outcome is not kept"
            );
            let at = if ran {
                // The write runs when the pause ends.
                eventually(Duration::from_secs(5), "the write to run", || {
                    server
                        .raw()
                        .get::<_, Option<String>>(&rkey)
                        .ok()
                        .flatten()
                        .as_deref()
                        == Some("new")
                });
                (paused_at + pause_ms).max(now_ms() - 1)
            } else {
                // The frozen server dies with the write unrun, and comes back with its data.
                server.stop();
                std::thread::sleep(OUTAGE);
                server.restart();
                let _: () = server.raw().set(&rkey, "old").unwrap();
                now_ms()
            };
            let _: () = coord.raw().set(format!("{name}:set_at"), at).unwrap();
            let samples = read_loop(|| cache.get("k"), expect, || true, || Some(at + AFTER_MS));
            check(&what, &samples, at, child);
        }
    }
}
