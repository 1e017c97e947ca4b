//! Loads never overwrite newer data: every path that stores a loaded value, racing every kind
//! of writer. Each test runs a slow loader, writes the key while it runs, then lets it finish:
//! the caller gets the loaded value (what its source said), but Redis and the L1 keep the
//! write (a value, or its absence), and the skipped fill is counted. Against a real, private
//! Redis; the cross-process cases with a second, real process.

mod support;

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use flipcache::{FlipCache, Loaded, flipcache};
use redis::Commands;
use support::{Server, child_said, eventually, spawn_child};

const WAIT: Duration = Duration::from_secs(10);

/// A loader's gate: the loader says it started, then waits until the test opens the gate.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<(bool, bool)>, Condvar)>);

impl Gate {
    /// Called by the loader: marks it started, waits for [`Gate::open`].
    fn enter(&self) {
        let (m, c) = &*self.0;
        let mut s = m.lock().unwrap();
        s.0 = true;
        c.notify_all();
        while !s.1 {
            s = c.wait_timeout(s, WAIT).unwrap().0;
        }
    }

    /// Waits until the loader runs.
    fn started(&self) {
        let (m, c) = &*self.0;
        let mut s = m.lock().unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while !s.0 {
            assert!(std::time::Instant::now() < deadline, "the loader never ran");
            s = c.wait_timeout(s, Duration::from_millis(50)).unwrap().0;
        }
    }

    fn open(&self) {
        let (m, c) = &*self.0;
        m.lock().unwrap().1 = true;
        c.notify_all();
    }
}

fn raw_get(server: &Server, key: &str) -> Option<String> {
    server.raw().get(key).unwrap()
}

/// Runs `load` on a thread of its own, given a gate its loader enters; once the loader runs,
/// runs `write`, then lets the loader finish; gives what `load` returned.
fn racing<T: Send + 'static>(
    load: impl FnOnce(Gate) -> T + Send + 'static,
    write: impl FnOnce(),
) -> T {
    let gate = Gate::default();
    let loader = {
        let gate = gate.clone();
        std::thread::spawn(move || load(gate))
    };
    gate.started();
    write();
    gate.open();
    loader.join().unwrap()
}

/// Runs a blocking `get_with` of `k` whose loader returns `"old"` once `write` ran, and
/// checks what is left: `expect` in Redis and through the cache, one skipped fill.
fn race_blocking(
    server: &Server,
    cache: &FlipCache<String, String>,
    k: &str,
    write: impl FnOnce(),
    expect: Option<&str>,
) {
    let (c, key) = (cache.clone(), k.to_owned());
    let got = racing(
        move |gate| {
            c.get_with(&key, move || {
                gate.enter();
                "old".to_string()
            })
        },
        write,
    );
    assert_eq!(got.unwrap(), "old", "the caller gets what its loader said");
    check(server, cache, k, expect);
}

/// After a race: Redis holds `expect`, the cache serves it, and one fill was skipped.
fn check(server: &Server, cache: &FlipCache<String, String>, k: &str, expect: Option<&str>) {
    let rkey = format!("{}:{k}", cache.name());
    assert_eq!(
        raw_get(server, &rkey).as_deref(),
        expect,
        "the write made during the load stands in Redis"
    );
    assert_eq!(
        cache.get(k).unwrap().as_deref(),
        expect,
        "the cache serves the write, not the load"
    );
    assert_eq!(cache.stats().fills_skipped, 1, "one skipped fill counted");
}

fn cache(server: &Server, name: &str) -> FlipCache<String, String> {
    server
        .builder(name)
        .expire_time(Duration::from_secs(60))
        .build()
        .unwrap()
}

// ---- writers racing a blocking get_with ---------------------------------------------------

#[test]
fn a_foreign_set_during_a_load_wins() {
    let server = Server::start();
    let c = cache(&server, "fl_foreign");
    race_blocking(
        &server,
        &c,
        "k",
        || {
            let _: () = server.raw().set("fl_foreign:k", "new").unwrap();
        },
        Some("new"),
    );
}

#[test]
fn the_same_handles_set_during_its_own_load_wins() {
    let server = Server::start();
    let c = cache(&server, "fl_own");
    race_blocking(&server, &c, "k", || c.set("k", "new").unwrap(), Some("new"));
}

#[test]
fn set_with_ttl_and_set_if_absent_during_a_load_win() {
    let server = Server::start();
    let c = cache(&server, "fl_ttl");
    race_blocking(
        &server,
        &c,
        "a",
        || c.set_with_ttl("a", "new", Duration::from_secs(30)).unwrap(),
        Some("new"),
    );
    let d = cache(&server, "fl_nx");
    race_blocking(
        &server,
        &d,
        "b",
        || assert!(d.set_if_absent("b", "new").unwrap()),
        Some("new"),
    );
}

#[test]
fn a_delete_of_an_absent_key_during_a_load_wins() {
    let server = Server::start();
    let c = cache(&server, "fl_del");
    // Another handle of the same name (a separate cache in this process).
    let other = cache(&server, "fl_del");
    race_blocking(
        &server,
        &c,
        "k",
        || {
            assert!(!other.delete("k").unwrap(), "the key was absent");
        },
        None,
    );
}

#[test]
fn a_foreign_delete_of_a_stale_value_during_its_refresh_wins() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_swr")
        .expire_time(Duration::from_millis(300))
        .stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    c.set("k", "v1").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let gate = Gate::default();
    let g = gate.clone();
    let served = c.get_with("k", move || {
        g.enter();
        "old".to_string()
    });
    assert_eq!(served.unwrap(), "v1", "the stale value is served at once");
    gate.started();
    let _: () = server.raw().del("fl_swr:k").unwrap();
    gate.open();
    eventually(WAIT, "the refresh to end", || c.stats().fills_skipped == 1);
    assert_eq!(raw_get(&server, "fl_swr:k"), None);
    assert_eq!(c.get("k").unwrap(), None);
}

#[test]
fn clear_during_a_load_of_an_absent_key_wins() {
    let server = Server::start();
    let c = cache(&server, "fl_clear");
    race_blocking(
        &server,
        &c,
        "k",
        || {
            c.clear().unwrap();
        },
        None,
    );
}

#[test]
fn remove_by_tag_during_a_load_wins() {
    let server = Server::start();
    let c = cache(&server, "fl_tag");
    // Listed under `t`, gone from Redis (expired, or deleted by a client that keeps no index).
    c.set_with_tags("k", "v0", ["t"]).unwrap();
    let _: () = server.raw().del("fl_tag:k").unwrap();
    eventually(WAIT, "the delete to reach the L1", || {
        !c.local_contains("k")
    });
    race_blocking(
        &server,
        &c,
        "k",
        || {
            c.remove_by_tag("t").unwrap();
        },
        None,
    );
}

// ---- other load paths --------------------------------------------------------------------

#[test]
fn try_get_with_and_optionally_get_with_fills_are_conditional() {
    let server = Server::start();
    let c = cache(&server, "fl_try");
    let c2 = c.clone();
    let got = racing(
        move |g| {
            c2.try_get_with("k", move || {
                g.enter();
                Ok::<_, std::io::Error>("old".to_string())
            })
        },
        || c.set("k", "new").unwrap(),
    );
    assert_eq!(got.unwrap(), "old");
    check(&server, &c, "k", Some("new"));

    let d = cache(&server, "fl_opt");
    let d2 = d.clone();
    let got = racing(
        move |g| {
            d2.optionally_get_with("k", move || {
                g.enter();
                Some("old".to_string())
            })
        },
        || {
            let _: () = server.raw().set("fl_opt:k", "new").unwrap();
        },
    );
    assert_eq!(got.unwrap().as_deref(), Some("old"));
    check(&server, &d, "k", Some("new"));
}

#[test]
fn remembered_absence_is_not_written_over_a_write() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_absent")
        .expire_time(Duration::from_secs(60))
        .cache_absent(Duration::from_secs(60))
        .build()
        .unwrap();
    // A loader that finds nothing for `k`, after `write` ran.
    let finds_nothing = |k: &'static str, write: &dyn Fn()| {
        let c2 = c.clone();
        racing(
            move |g| {
                c2.optionally_get_with(k, move || {
                    g.enter();
                    None::<String>
                })
            },
            write,
        )
    };
    // A foreign SET while the loader finds nothing: no marker, the value stands.
    let got = finds_nothing("k", &|| {
        let _: () = server.raw().set("fl_absent:k", "new").unwrap();
    });
    assert_eq!(got.unwrap(), None);
    check(&server, &c, "k", Some("new"));
    let markers: Vec<String> = server.raw().keys("__flipcache__:absent:*").unwrap();
    assert!(markers.is_empty(), "no marker beside a value: {markers:?}");

    // A delete of the absent key while the loader finds nothing: no marker either, so the
    // next call loads again instead of trusting the old absence.
    let got = finds_nothing("j", &|| {
        c.delete("j").unwrap();
    });
    assert_eq!(got.unwrap(), None);
    assert_eq!(c.stats().fills_skipped, 2);
    let markers: Vec<String> = server.raw().keys("__flipcache__:absent:*").unwrap();
    assert!(
        markers.is_empty(),
        "no marker after the delete: {markers:?}"
    );
    let loads = c.stats().loads;
    assert_eq!(
        c.optionally_get_with("j", || Some("fresh".to_string()))
            .unwrap()
            .as_deref(),
        Some("fresh")
    );
    assert_eq!(c.stats().loads, loads + 1, "the next call loaded");
    // Without a race, absence is remembered as before.
    assert_eq!(c.optionally_get_with("z", || None::<String>).unwrap(), None);
    let markers: Vec<String> = server.raw().keys("__flipcache__:absent:*").unwrap();
    assert_eq!(markers.len(), 1, "{markers:?}");
}

#[test]
fn the_lease_holders_fill_is_conditional() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_lease")
        .expire_time(Duration::from_secs(60))
        .distributed_lock(Duration::from_secs(5))
        .build()
        .unwrap();
    race_blocking(
        &server,
        &c,
        "k",
        || {
            let _: () = server.raw().set("fl_lease:k", "new").unwrap();
        },
        Some("new"),
    );
    let leases: Vec<String> = server.raw().keys("__flipcache__:lease:*").unwrap();
    eventually(WAIT, "the lease to be released", || {
        server
            .raw()
            .keys::<_, Vec<String>>("__flipcache__:lease:*")
            .unwrap()
            .is_empty()
    });
    drop(leases);
}

#[test]
fn a_load_that_outlives_its_hard_timeout_fills_conditionally() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_hard")
        .expire_time(Duration::from_secs(60))
        .load_hard_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    let got = c.get_with("k", move || {
        g.enter();
        "old".to_string()
    });
    assert!(got.is_err(), "the caller stopped waiting: {got:?}");
    gate.started();
    c.set("k", "new").unwrap();
    gate.open();
    eventually(WAIT, "the load to end", || c.stats().fills_skipped == 1);
    assert_eq!(raw_get(&server, "fl_hard:k").as_deref(), Some("new"));
    assert_eq!(c.get("k").unwrap().as_deref(), Some("new"));
}

#[test]
fn eager_refresh_fills_are_conditional() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_eager")
        .expire_time(Duration::from_millis(600))
        .eager_refresh(0.1)
        .build()
        .unwrap();
    c.set("k", "v1").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("v1"));
    std::thread::sleep(Duration::from_millis(150));
    let gate = Gate::default();
    let g = gate.clone();
    // A hit past the refresh point: served, and refreshed in the background.
    assert_eq!(
        c.get_with("k", move || {
            g.enter();
            "old".to_string()
        })
        .unwrap(),
        "v1"
    );
    gate.started();
    let _: () = server.raw().set("fl_eager:k", "new").unwrap();
    gate.open();
    eventually(WAIT, "the refresh to end", || c.stats().fills_skipped == 1);
    assert_eq!(raw_get(&server, "fl_eager:k").as_deref(), Some("new"));
    eventually(WAIT, "the cache to serve the write", || {
        c.get("k").unwrap().as_deref() == Some("new")
    });
}

#[test]
fn loaders_still_fill_when_nothing_wrote() {
    let server = Server::start();
    let c = cache(&server, "fl_plain");
    assert_eq!(c.get_with("k", || "loaded".to_string()).unwrap(), "loaded");
    assert_eq!(raw_get(&server, "fl_plain:k").as_deref(), Some("loaded"));
    assert_eq!(c.get("k").unwrap().as_deref(), Some("loaded"));
    // A delete long before the load leaves a trace the load reads: it fills all the same.
    c.delete("j").unwrap();
    assert_eq!(c.get_with("j", || "loaded".to_string()).unwrap(), "loaded");
    assert_eq!(raw_get(&server, "fl_plain:j").as_deref(), Some("loaded"));
    assert_eq!(c.stats().fills_skipped, 0);
    // Traces and markers stay outside the layout: `len` and `keys` see the values only.
    assert_eq!(c.len().unwrap(), 2);
}

// ---- the async front ---------------------------------------------------------------------

#[test]
fn async_fills_are_conditional() {
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = server
            .builder::<String, String>("fl_async")
            .expire_time(Duration::from_secs(60))
            .build_async()
            .await
            .unwrap();
        for (k, op) in [("a", "foreign"), ("b", "own"), ("c", "delete")] {
            let gate = Gate::default();
            let g = gate.clone();
            let c2 = c.clone();
            let k2 = k.to_owned();
            let task = tokio::spawn(async move {
                c2.get_with(&k2, async move {
                    tokio::task::spawn_blocking(move || g.enter())
                        .await
                        .unwrap();
                    "old".to_string()
                })
                .await
            });
            let g = gate.clone();
            tokio::task::spawn_blocking(move || g.started())
                .await
                .unwrap();
            let rkey = format!("fl_async:{k}");
            let expect = match op {
                "foreign" => {
                    let _: () = server.raw().set(&rkey, "new").unwrap();
                    Some("new")
                }
                "own" => {
                    c.set(k, "new").await.unwrap();
                    Some("new")
                }
                _ => {
                    c.delete(k).await.unwrap();
                    None
                }
            };
            gate.open();
            assert_eq!(task.await.unwrap().unwrap(), "old");
            assert_eq!(raw_get(&server, &rkey).as_deref(), expect, "{op}");
            assert_eq!(c.get(k).await.unwrap().as_deref(), expect, "{op}");
        }
        assert_eq!(c.stats().fills_skipped, 3);

        // A stale-while-revalidate refresh racing a foreign write.
        let s = server
            .builder::<String, String>("fl_async_swr")
            .expire_time(Duration::from_millis(300))
            .stale_for(Duration::from_secs(60))
            .build_async()
            .await
            .unwrap();
        s.set("k", "v1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let gate = Gate::default();
        let g = gate.clone();
        let served = s
            .get_with("k", async move {
                tokio::task::spawn_blocking(move || g.enter())
                    .await
                    .unwrap();
                "old".to_string()
            })
            .await
            .unwrap();
        assert_eq!(served, "v1");
        let g = gate.clone();
        tokio::task::spawn_blocking(move || g.started())
            .await
            .unwrap();
        let _: () = server.raw().set("fl_async_swr:k", "new").unwrap();
        gate.open();
        let deadline = std::time::Instant::now() + WAIT;
        while s.stats().fills_skipped == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the refresh never ended"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(raw_get(&server, "fl_async_swr:k").as_deref(), Some("new"));
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some("new"));
    });
}

// ---- memoized functions ------------------------------------------------------------------

static MEMO_URL: OnceLock<String> = OnceLock::new();
static MEMO_GATE: Mutex<Option<Gate>> = Mutex::new(None);

fn memo_gate() -> Option<Gate> {
    MEMO_GATE.lock().unwrap().clone()
}

#[flipcache(name = "fl_memo", redis = MEMO_URL.get(), expire_time = 60)]
fn memo_slow(n: u64) -> String {
    if let Some(g) = memo_gate() {
        g.enter();
    }
    format!("old{n}")
}

#[flipcache(name = "fl_memo_async", redis = MEMO_URL.get(), expire_time = 60)]
async fn memo_slow_async(n: u64) -> String {
    if let Some(g) = memo_gate() {
        tokio::task::spawn_blocking(move || g.enter())
            .await
            .unwrap();
    }
    format!("old{n}")
}

#[test]
fn memoized_fills_are_conditional() {
    let server = Server::start();
    MEMO_URL.set(server.url()).unwrap();
    let gate = Gate::default();
    *MEMO_GATE.lock().unwrap() = Some(gate.clone());
    let t = std::thread::spawn(|| memo_slow(1));
    gate.started();
    let _: () = server.raw().set("fl_memo:1", "new").unwrap();
    gate.open();
    assert_eq!(t.join().unwrap(), "old1", "the body's result is returned");
    assert_eq!(raw_get(&server, "fl_memo:1").as_deref(), Some("new"));

    let gate = Gate::default();
    *MEMO_GATE.lock().unwrap() = Some(gate.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.spawn(memo_slow_async(2));
    gate.started();
    let _: () = server.raw().set("fl_memo_async:2", "new").unwrap();
    gate.open();
    assert_eq!(rt.block_on(t).unwrap(), "old2");
    assert_eq!(raw_get(&server, "fl_memo_async:2").as_deref(), Some("new"));
    *MEMO_GATE.lock().unwrap() = None;
    // Without a race the memo stores as before.
    assert_eq!(memo_slow(3), "old3");
    assert_eq!(raw_get(&server, "fl_memo:3").as_deref(), Some("old3"));
}

// ---- another process ---------------------------------------------------------------------

/// The child side of the cross-process tests: builds cache `FILLS_CHILD_NAME` and runs
/// `FILLS_CHILD_OP` (`delete`, `set` or `clear`) on key `k`. Run only by those tests.
#[test]
#[ignore = "a child process of another_processs_writes_during_a_load_win"]
fn child_writer() {
    let url = std::env::var("FILLS_CHILD_URL").expect("run only as a child process");
    let name = std::env::var("FILLS_CHILD_NAME").expect("run only as a child process");
    let op = std::env::var("FILLS_CHILD_OP").expect("run only as a child process");
    let c: FlipCache<String, String> = FlipCache::builder(&name)
        .redis_url(&url)
        .tracking(support::tracking())
        .build()
        .unwrap();
    match op.as_str() {
        "delete" => {
            c.delete("k").unwrap();
        }
        "set" => c.set("k", "new").unwrap(),
        "clear" => {
            c.clear().unwrap();
        }
        other => panic!("unknown op {other}"),
    }
    println!("FILLS_CHILD done {op}");
}

#[test]
fn another_processs_writes_during_a_load_win() {
    let server = Server::start();
    for (op, expect) in [("delete", None), ("set", Some("new")), ("clear", None)] {
        let name = format!("fl_child_{op}");
        let c = cache(&server, &name);
        race_blocking(
            &server,
            &c,
            "k",
            || {
                let child = spawn_child(
                    "child_writer",
                    &[
                        ("FILLS_CHILD_URL", server.url()),
                        ("FILLS_CHILD_NAME", name.clone()),
                        ("FILLS_CHILD_OP", op.to_owned()),
                    ],
                );
                let out = child.output();
                assert_eq!(child_said("child_writer", &out, "FILLS_CHILD done "), op);
            },
            expect,
        );
    }
}

// ---- what Python sees --------------------------------------------------------------------

#[test]
fn traces_and_markers_stay_outside_the_layout() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_layout")
        .cache_absent(Duration::from_secs(60))
        .build()
        .unwrap();
    c.delete("gone").unwrap();
    c.clear().unwrap();
    assert_eq!(
        c.optionally_get_with("none", || None::<String>).unwrap(),
        None
    );
    c.get_with("k", || Loaded::new("v".to_string())).unwrap();
    let layout: Vec<String> = server.raw().keys("fl_layout:*").unwrap();
    assert_eq!(layout, ["fl_layout:k"], "only values under {{name}}:");
    assert_eq!(c.keys().unwrap(), ["k"]);
    let all: Vec<String> = server.raw().keys("*").unwrap();
    assert!(
        all.iter()
            .all(|k| k == "fl_layout:k" || k.starts_with("__flipcache__:")),
        "{all:?}"
    );
    // Whoever can read the value reads it as it was written: plain text.
    assert_eq!(raw_get(&server, "fl_layout:k").as_deref(), Some("v"));
}

#[test]
fn fills_and_deletes_load_their_scripts_again_after_a_script_flush() {
    let server = Server::start();
    let c = server
        .builder::<String, String>("fl_flush")
        .cache_absent(Duration::from_secs(60))
        .build()
        .unwrap();
    for round in 0..2 {
        // Redis forgets every script (as after a restart): each is sent by SHA1 and loaded again.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut server.raw())
            .unwrap();
        let k = format!("k{round}");
        assert_eq!(c.get_with(&k, || "v".to_string()).unwrap(), "v");
        assert_eq!(
            raw_get(&server, &format!("fl_flush:{k}")).as_deref(),
            Some("v")
        );
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut server.raw())
            .unwrap();
        assert!(c.delete(&k).unwrap());
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut server.raw())
            .unwrap();
        assert_eq!(
            c.optionally_get_with("none", || None::<String>).unwrap(),
            None
        );
    }
    let markers: Vec<String> = server.raw().keys("__flipcache__:absent:*").unwrap();
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert_eq!(c.stats().fills_skipped, 0);
    assert_eq!(c.stats().errors, 0);
}
