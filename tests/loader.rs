//! The loader API (`get_with`, `try_get_with`, `optionally_get_with`) on both fronts and in the
//! memo, against a real, private Redis: single-flight under 64 threads and 1,000 tasks,
//! hand-over after a panic or a cancellation, loader errors, fail-open, undecodable entries,
//! per-entry TTLs and jitter, remembered absence across processes, and `set_if_absent`.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use flipcache::{FlipCache, LoadError, Loaded, flipcache};
use redis::Commands;
use support::{Server, eventually};

fn nums(server: &Server, name: &str) -> FlipCache<u64, u64> {
    FlipCache::builder(name)
        .redis_url(&server.url())
        .build()
        .expect("build")
}

fn strings(server: &Server, name: &str) -> FlipCache<String, String> {
    FlipCache::builder(name)
        .redis_url(&server.url())
        .build()
        .expect("build")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

// ---- single-flight -------------------------------------------------------------------------

#[test]
fn sixty_four_threads_on_one_cold_key_run_the_loader_once() {
    let server = Server::start();
    let cache = nums(&server, "ld_threads");
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.get_with(&7, move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    49
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 49);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stored: Option<String> = server.raw().get("ld_threads:7").unwrap();
    assert_eq!(stored.as_deref(), Some("49"));
    let s = cache.stats();
    assert_eq!(s.loads, 1);
    assert!(s.waits >= 1, "waiters are counted: {s:?}");
}

#[test]
fn a_thousand_tasks_on_one_cold_key_run_the_loader_once() {
    let server = Server::start();
    let rt = runtime();
    let url = server.url();
    let loads = Arc::new(AtomicUsize::new(0));
    let results = rt.block_on(async {
        let cache: flipcache::aio::FlipCache<u64, u64> = FlipCache::builder("ld_tasks")
            .redis_url(&url)
            .build_async()
            .await
            .unwrap();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_with(&9, async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            81
                        })
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap());
        }
        out
    });
    assert!(results.iter().all(|&v| v == 81));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[test]
fn a_leader_that_panics_hands_the_key_over() {
    let server = Server::start();
    let cache = nums(&server, "ld_panic");
    let loads = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, loads) = (cache.clone(), loads.clone());
        std::thread::spawn(move || {
            cache.get_with(&1, move || -> u64 {
                loads.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                panic!("the loader fails hard");
            })
        })
    };
    eventually(Duration::from_secs(5), "the leader started", || {
        loads.load(Ordering::SeqCst) == 1
    });
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            std::thread::spawn(move || {
                cache.get_with(&1, move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    11
                })
            })
        })
        .collect();
    assert!(
        leader.join().is_err(),
        "the leader's panic reaches its caller"
    );
    for w in waiters {
        assert_eq!(w.join().unwrap().unwrap(), 11);
    }
    // The panicking load, then exactly one take-over.
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[test]
fn a_cancelled_leader_hands_the_key_over() {
    let server = Server::start();
    let rt = runtime();
    let url = server.url();
    let loads = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let cache: flipcache::aio::FlipCache<u64, u64> = FlipCache::builder("ld_cancel")
            .redis_url(&url)
            .build_async()
            .await
            .unwrap();
        let leader = {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(150),
                    cache.get_with(&2, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        0
                    }),
                )
                .await
            })
        };
        while loads.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiter = {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_with(&2, async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        22
                    })
                    .await
            })
        };
        assert!(leader.await.unwrap().is_err(), "the leader timed out");
        assert_eq!(waiter.await.unwrap().unwrap(), 22);
    });
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

// ---- errors --------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct DbDown(u32);

impl std::fmt::Display for DbDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database down ({})", self.0)
    }
}

impl std::error::Error for DbDown {}

#[test]
fn a_loader_error_reaches_every_waiter_and_is_never_cached() {
    let server = Server::start();
    let cache = nums(&server, "ld_error");
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.try_get_with(&3, move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    Err::<u64, _>(DbDown(7))
                })
            })
        })
        .collect();
    for h in handles {
        let err = h.join().unwrap().unwrap_err();
        assert_eq!(err.loader_error(), Some(&DbDown(7)));
        assert_eq!(
            err.to_string(),
            "cache `ld_error`: the loader failed for `ld_error:3`"
        );
        let source = std::error::Error::source(&err).expect("the loader's error is the source");
        assert_eq!(source.to_string(), "database down (7)");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "waiters share the error");
    // Not cached: the next call loads again, and its value is stored.
    assert!(!server.raw().exists::<_, bool>("ld_error:3").unwrap());
    assert_eq!(
        cache.try_get_with(&3, move || Ok::<_, DbDown>(33)).unwrap(),
        33
    );
    assert_eq!(cache.get(&3).unwrap(), Some(33));
    assert_eq!(cache.stats().load_errors, 1);
    // The caller gets its own error back.
    let err = cache
        .try_get_with(&4, move || Err::<u64, _>(DbDown(8)))
        .unwrap_err();
    assert_eq!(err.into_loader_error(), Some(Ok(DbDown(8))));
}

#[test]
fn redis_stopped_the_loader_value_comes_back_unless_fail_open_is_off() {
    let mut server = Server::start();
    let open = FlipCache::<u64, u64>::builder("ld_down")
        .redis_url(&server.url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let closed = FlipCache::<u64, u64>::builder("ld_down_strict")
        .redis_url(&server.url())
        .timeout(Duration::from_millis(200))
        .fail_open(false)
        .build()
        .unwrap();
    server.stop();
    assert_eq!(open.get_with(&5, move || 25).unwrap(), 25);
    // Kept locally meanwhile: the next call is an L1 hit.
    assert_eq!(
        open.get_with(&5, move || -> u64 { unreachable!() })
            .unwrap(),
        25
    );
    let err = closed.get_with(&5, move || 25).unwrap_err();
    assert!(err.is_remote(), "{err}");
    let err = closed
        .try_get_with(&5, move || Ok::<u64, DbDown>(25))
        .unwrap_err();
    assert!(
        matches!(err, LoadError::Cache(ref e) if e.is_remote()),
        "{err}"
    );
    let rt = runtime();
    let aopen = open.to_async();
    assert_eq!(
        rt.block_on(aopen.get_with(&6, async move { 36 })).unwrap(),
        36
    );
}

#[test]
fn garbage_in_redis_is_overwritten_by_the_loader() {
    let server = Server::start();
    let cache = nums(&server, "ld_garbage");
    let mut raw = server.raw();
    let _: () = raw.set("ld_garbage:1", "not a number").unwrap();
    assert!(cache.get(&1).unwrap_err().is_decode());
    assert_eq!(cache.get_with(&1, move || 10).unwrap(), 10);
    let stored: String = raw.get("ld_garbage:1").unwrap();
    assert_eq!(stored, "10");
}

static GARBAGE_URL: OnceLock<String> = OnceLock::new();
static GARBAGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "users_memo", redis = GARBAGE_URL.get())]
fn user_memo(id: u64) -> u64 {
    GARBAGE_RUNS.fetch_add(1, Ordering::SeqCst);
    id * 100
}

#[test]
fn a_memoized_function_overwrites_an_entry_that_does_not_decode() {
    let server = Server::start();
    GARBAGE_URL.set(server.url()).unwrap();
    let mut raw = server.raw();
    let _: () = raw.set("users_memo:2", "garbage").unwrap();
    assert_eq!(user_memo(2), 200);
    let stored: String = raw.get("users_memo:2").unwrap();
    assert_eq!(stored, "200", "the bad entry is overwritten");
    // Another process's view: a fresh L1 reads the good value from Redis.
    user_memo_cache().unwrap().clear().unwrap();
    let _: () = raw.set("users_memo:2", "200").unwrap();
    assert_eq!(user_memo(2), 200);
    assert_eq!(GARBAGE_RUNS.load(Ordering::SeqCst), 1);
}

#[test]
fn undecodable_entries_read_as_absent_when_asked_else_the_error_names_the_key() {
    let server = Server::start();
    let strict = nums(&server, "ld_decode");
    let lenient = FlipCache::<u64, u64>::builder("ld_decode")
        .redis_url(&server.url())
        .decode_errors_as_misses(true)
        .build()
        .unwrap();
    strict.set_many([(1, 1), (3, 3)]).unwrap();
    let _: () = server.raw().set("ld_decode:2", "oops").unwrap();
    let err = FlipCache::<u64, u64>::builder("ld_decode")
        .redis_url(&server.url())
        .local_max(0)
        .build()
        .unwrap()
        .get_many(&[1, 2, 3])
        .unwrap_err();
    assert_eq!(err.key(), Some("ld_decode:2"));
    assert_eq!(
        lenient.get_many(&[1, 2, 3]).unwrap(),
        vec![Some(1), None, Some(3)]
    );
    assert_eq!(lenient.get(&2).unwrap(), None);
}

/// A value that does not decode, read as absent (`decode_errors_as_misses`) or healed by a
/// loader, is a decode error but not an error (the call returned `Ok`); returned as
/// `Error::Decode`, it is both.
#[test]
fn decode_errors_count_apart_from_the_errors_callers_get() {
    let server = Server::start();
    let lenient = FlipCache::<u64, u64>::builder("ld_count")
        .redis_url(&server.url())
        .decode_errors_as_misses(true)
        .build()
        .unwrap();
    let _: () = server.raw().set("ld_count:1", "oops").unwrap();
    assert_eq!(lenient.get(&1).unwrap(), None);
    let s = lenient.stats();
    assert_eq!(
        (s.errors, s.decode_errors, s.misses, s.remote_hits),
        (0, 1, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        lenient.get_with(&1, || 7).unwrap(),
        7,
        "the loader heals it"
    );
    let s = lenient.stats();
    assert_eq!((s.errors, s.decode_errors, s.loads), (0, 2, 1), "{s:?}");
    assert_eq!(lenient.get(&1).unwrap(), Some(7));

    let strict = nums(&server, "ld_count_strict");
    let _: () = server.raw().set("ld_count_strict:1", "oops").unwrap();
    assert!(strict.get(&1).unwrap_err().is_decode());
    let s = strict.stats();
    assert_eq!((s.errors, s.decode_errors), (1, 1), "{s:?}");
}

// ---- TTLs ----------------------------------------------------------------------------------

#[test]
fn entries_carry_their_own_ttls_and_jitter_spreads_them() {
    let server = Server::start();
    let cache = FlipCache::<String, String>::builder("ld_ttl")
        .redis_url(&server.url())
        .expire_time(Duration::from_secs(100))
        .build()
        .unwrap();
    let mut raw = server.raw();
    cache
        .set_with_ttl("token", "t", Duration::from_secs(5))
        .unwrap();
    let pttl: i64 = raw.pttl("ld_ttl:token").unwrap();
    assert!((4_000..=5_000).contains(&pttl), "{pttl}");
    let ttl = cache.ttl("token").unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(5) && ttl > Duration::from_secs(4));
    assert_eq!(cache.ttl("nothing").unwrap(), None);
    // A loader chooses its entry's TTL.
    cache
        .get_with("loaded", move || {
            Loaded::new("v".to_string()).ttl(Duration::from_secs(7))
        })
        .unwrap();
    let pttl: i64 = raw.pttl("ld_ttl:loaded").unwrap();
    assert!((6_000..=7_000).contains(&pttl), "{pttl}");
    // The cache's own TTL otherwise.
    cache.set("plain", "p").unwrap();
    let pttl: i64 = raw.pttl("ld_ttl:plain").unwrap();
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    // A short per-entry TTL bounds the L1 copy too.
    cache
        .set_with_ttl("brief", "b", Duration::from_millis(150))
        .unwrap();
    assert!(cache.local_contains("brief"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!cache.local_contains("brief"));
    assert_eq!(cache.get("brief").unwrap(), None);

    let jittered = FlipCache::<u64, u64>::builder("ld_jitter")
        .redis_url(&server.url())
        .expire_time(Duration::from_secs(100))
        .expire_jitter(Duration::from_secs(20))
        .build()
        .unwrap();
    jittered.set_many((0..50).map(|i| (i, i))).unwrap();
    for i in 50..60 {
        jittered.set(i, i).unwrap();
    }
    let ttls: Vec<i64> = (0..60)
        .map(|i| raw.pttl(format!("ld_jitter:{i}")).unwrap())
        .collect();
    assert!(
        ttls.iter().all(|t| (99_000..=120_000).contains(t)),
        "{ttls:?}"
    );
    let seconds: HashSet<i64> = ttls.iter().map(|t| t / 1000).collect();
    assert!(seconds.len() >= 8, "jitter spreads expiries: {ttls:?}");
}

// ---- remembered absence --------------------------------------------------------------------

fn absent_cache(url: &str) -> FlipCache<String, String> {
    FlipCache::builder("ld_absent")
        .redis_url(url)
        .cache_absent(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Runs `optionally_get_with("row")` in a fresh process; says (ran the loader, value).
fn absent_in_child(url: &str) -> (bool, Option<String>) {
    let line = support::run_child(
        "child_absent_reader",
        &[("LOADER_CHILD_URL", url.to_owned())],
        "LOADER_CHILD ",
    );
    let (ran, value) = line.split_once(' ').unwrap();
    let value = value.strip_prefix("value=").unwrap();
    (ran == "ran=true", (value != "-").then(|| value.to_owned()))
}

/// The child side of `absence_is_remembered_for_every_process_until_anyone_writes`: run only
/// by that test, with `--ignored`; run any other way it fails.
#[test]
#[ignore = "a child process of absence_is_remembered_for_every_process_until_anyone_writes"]
fn child_absent_reader() {
    let url = std::env::var("LOADER_CHILD_URL")
        .expect("run only as a child process: LOADER_CHILD_URL names the parent's server");
    let cache = absent_cache(&url);
    static RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let value = cache
        .optionally_get_with("row", move || {
            RAN.store(true, Ordering::SeqCst);
            Some("from the child's database".to_string())
        })
        .unwrap();
    println!(
        "LOADER_CHILD ran={} value={}",
        RAN.load(Ordering::SeqCst),
        value.as_deref().unwrap_or("-")
    );
}

#[test]
fn absence_is_remembered_for_every_process_until_anyone_writes() {
    let server = Server::start();
    let cache = absent_cache(&server.url());
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    let none = || {
        LOADS.fetch_add(1, Ordering::SeqCst);
        None::<String>
    };
    assert_eq!(cache.optionally_get_with("row", none).unwrap(), None);
    assert_eq!(cache.optionally_get_with("row", none).unwrap(), None);
    assert_eq!(LOADS.load(Ordering::SeqCst), 1, "the absence is remembered");
    // Nothing Python could misread under `{name}:{key}`, and `len`/`keys` do not count it.
    let mut raw = server.raw();
    let layout: Vec<String> = raw.keys("ld_absent:*").unwrap();
    assert!(layout.is_empty(), "{layout:?}");
    assert_eq!(cache.len().unwrap(), 0);
    assert_eq!(cache.get("row").unwrap(), None);
    // Another process remembers it too.
    assert_eq!(absent_in_child(&server.url()), (false, None));
    // A foreign write (Python, redis-cli) ends it at once, in every process.
    let _: () = raw.set("ld_absent:row", "written by python").unwrap();
    assert_eq!(
        cache.optionally_get_with("row", none).unwrap().as_deref(),
        Some("written by python")
    );
    assert_eq!(
        absent_in_child(&server.url()),
        (false, Some("written by python".into()))
    );
    // Deleting the key forgets the absence too: the loader runs again.
    cache.delete("row").unwrap();
    assert!(absent_in_child(&server.url()).0);
    // `clear` removes markers as well.
    cache.optionally_get_with("gone", none).unwrap();
    cache.clear().unwrap();
    let markers: Vec<String> = raw.keys("__flipcache__:absent:*").unwrap();
    assert!(markers.is_empty(), "{markers:?}");
}

#[test]
fn a_write_through_the_cache_ends_a_remembered_absence() {
    let server = Server::start();
    let cache = absent_cache(&server.url());
    let rt = runtime();
    let aio = cache.to_async();
    let found = rt
        .block_on(aio.optionally_get_with("k", async move { None::<String> }))
        .unwrap();
    assert_eq!(found, None);
    cache.set("k", "v").unwrap();
    let markers: Vec<String> = server.raw().keys("__flipcache__:absent:*").unwrap();
    assert!(
        markers.is_empty(),
        "the write ended the absence: {markers:?}"
    );
    let found = rt
        .block_on(aio.optionally_get_with("k", async move { None::<String> }))
        .unwrap();
    assert_eq!(found.as_deref(), Some("v"));
}

static ABSENT_URL: OnceLock<String> = OnceLock::new();
static ABSENT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "ld_memo_absent", redis = ABSENT_URL.get(), cache_absent = 60)]
fn find_user(id: u64) -> Result<Option<String>, String> {
    ABSENT_RUNS.fetch_add(1, Ordering::SeqCst);
    match id {
        1 => Ok(Some("ada".into())),
        0 => Err("no id 0".into()),
        _ => Ok(None),
    }
}

#[test]
fn memoized_functions_remember_absence_and_never_cache_errors() {
    let server = Server::start();
    ABSENT_URL.set(server.url()).unwrap();
    assert_eq!(find_user(1), Ok(Some("ada".into())));
    assert_eq!(find_user(1), Ok(Some("ada".into())));
    assert_eq!(find_user(2), Ok(None));
    assert_eq!(find_user(2), Ok(None));
    assert_eq!(ABSENT_RUNS.load(Ordering::SeqCst), 2);
    assert!(find_user(0).is_err());
    assert!(find_user(0).is_err());
    assert_eq!(
        ABSENT_RUNS.load(Ordering::SeqCst),
        4,
        "errors are not cached"
    );
    // Invalidating forgets the absence.
    find_user_invalidate(2).unwrap();
    assert_eq!(find_user(2), Ok(None));
    assert_eq!(ABSENT_RUNS.load(Ordering::SeqCst), 5);
}

// ---- set_if_absent -------------------------------------------------------------------------

#[test]
fn set_if_absent_writes_only_new_keys() {
    let server = Server::start();
    let cache = strings(&server, "ld_nx");
    assert!(cache.set_if_absent("k", "first").unwrap());
    assert!(!cache.set_if_absent("k", "second").unwrap());
    assert_eq!(cache.get("k").unwrap().as_deref(), Some("first"));
    let stored: String = server.raw().get("ld_nx:k").unwrap();
    assert_eq!(stored, "first");
    let rt = runtime();
    let aio = cache.to_async();
    assert!(!rt.block_on(aio.set_if_absent("k", "third")).unwrap());
    assert!(rt.block_on(aio.set_if_absent("other", "x")).unwrap());
    assert_eq!(cache.get("other").unwrap().as_deref(), Some("x"));
}

// ---- outages -------------------------------------------------------------------------------

/// Runs `set(key, value)` on the cache `name` from a fresh process.
fn write_in_child(url: &str, name: &str, key: &str, value: &str) {
    support::run_child(
        "child_writer",
        &[
            ("LOADER_CHILD_URL", url.to_owned()),
            ("LOADER_CHILD_WRITE", format!("{name}\n{key}\n{value}")),
        ],
        "LOADER_CHILD wrote",
    );
}

/// The child side of the outage test: run only by it, with `--ignored`; run any other way it
/// fails.
#[test]
#[ignore = "a child process of values_loaded_while_redis_was_down_are_not_served_after_it_returns"]
fn child_writer() {
    let url = std::env::var("LOADER_CHILD_URL").expect("run only as a child process");
    let what = std::env::var("LOADER_CHILD_WRITE").expect("run only as a child process");
    let mut parts = what.splitn(3, '\n');
    let (Some(name), Some(key), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("LOADER_CHILD_WRITE is `name\\nkey\\nvalue`");
    };
    let cache: FlipCache<String, String> =
        FlipCache::builder(name).redis_url(&url).build().unwrap();
    cache.set(key, value).unwrap();
    println!("LOADER_CHILD wrote");
}

#[test]
fn values_loaded_while_redis_was_down_are_not_served_after_it_returns() {
    let mut server = Server::start();
    let cache = FlipCache::<String, String>::builder("ld_outage")
        .redis_url(&server.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(
        cache.get_with("user", move || "v1".to_string()).unwrap(),
        "v1"
    );
    server.stop();
    // Fail-open: the loader's value is served (and kept locally) while Redis is away.
    eventually(Duration::from_secs(5), "the outage is noticed", || {
        cache
            .get_with("user", move || "while down".to_string())
            .unwrap()
            == "while down"
    });
    assert_eq!(
        cache.get_with("user", move || "again".to_string()).unwrap(),
        "while down"
    );
    server.restart();
    // Another process updates the user while we have not reconnected yet.
    write_in_child(&server.url(), "ld_outage", "user", "v2");
    // Every call below is an L1 hit until the cache reconnects by itself (its keep-alive);
    // then the value kept while Redis was down is dropped, and Redis's is read.
    eventually(
        Duration::from_secs(5),
        "the value kept while Redis was down is dropped",
        || {
            cache
                .get_with("user", move || "loader".to_string())
                .unwrap()
                == "v2"
        },
    );
    // And it stays so: nothing kept from the outage comes back.
    for _ in 0..20 {
        assert_eq!(
            cache
                .get_with("user", move || "loader".to_string())
                .unwrap(),
            "v2"
        );
    }
}

// ---- a memoized function chooses its entry's TTL -------------------------------------------

static TOKEN_URL: OnceLock<String> = OnceLock::new();
static TOKEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "ld_memo_ttl", redis = TOKEN_URL.get(), expire_time = 3600)]
fn token(user: u64) -> Loaded<String> {
    TOKEN_RUNS.fetch_add(1, Ordering::SeqCst);
    // A token valid for 10 s is cached for 5 s, whatever the cache's expire_time.
    Loaded::new(format!("token-{user}")).ttl(Duration::from_secs(5))
}

#[flipcache(name = "ld_memo_ttl_result", redis = TOKEN_URL.get())]
fn fallible_token(user: u64) -> Result<Loaded<String>, String> {
    TOKEN_RUNS.fetch_add(1, Ordering::SeqCst);
    match user {
        0 => Err("no user 0".into()),
        _ => Ok(Loaded::new(format!("token-{user}")).ttl(Duration::from_secs(7))),
    }
}

#[test]
fn a_memoized_function_chooses_the_ttl_of_what_it_returns() {
    let server = Server::start();
    TOKEN_URL.set(server.url()).unwrap();
    let mut raw = server.raw();
    assert_eq!(token(1).into_value(), "token-1");
    assert_eq!(token(1).into_value(), "token-1");
    let pttl: i64 = raw.pttl("ld_memo_ttl:1").unwrap();
    assert!((4_000..=5_000).contains(&pttl), "{pttl}");
    assert_eq!(fallible_token(2).unwrap().into_value(), "token-2");
    let pttl: i64 = raw.pttl("ld_memo_ttl_result:2").unwrap();
    assert!((6_000..=7_000).contains(&pttl), "{pttl}");
    assert!(fallible_token(0).is_err());
    assert_eq!(fallible_token(2).unwrap().into_value(), "token-2");
    assert_eq!(
        TOKEN_RUNS.load(Ordering::SeqCst),
        3,
        "hits ran no body; errors are not cached"
    );
}
