//! One load per key across processes (`distributed_lock`), with real child processes and a real
//! Redis: a stampede of 4 processes x 8 threads runs the loader once per round and its waiters
//! send a bounded number of commands (they are woken by invalidations, not polling); a holder
//! killed mid-load (SIGKILL) is taken over once its lease ends; Redis down falls back to the
//! process's own single-flight; the lease lives outside the `{name}:{key}` layout; the memo's
//! `distributed_lock`; background refreshes run once across processes.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, child_said, eventually, spawn_child, stampede};

/// The child side of the stampede test: run only by it; run any other way it fails.
#[test]
#[ignore = "a child process of four_processes_of_eight_threads_run_the_loader_once_per_round"]
fn child_stampede() {
    stampede::child();
}

#[test]
fn four_processes_of_eight_threads_run_the_loader_once_per_round() {
    let server = Server::start();
    let coord = Server::start();
    let spec = stampede::Spec::new(server.url(), vec![server.url()], coord.url());
    let report = stampede::run("child_stampede", &spec);
    // Each process: a read, a lease attempt, the read its wake-up makes; the holder: its write
    // and the release script. A waiter polling every few milliseconds through a 100 ms load
    // would send several hundred.
    report.assert_once_per_round(20, 80);
}

/// The same stampede on the async front: 4 processes x 8 tasks.
#[test]
fn four_processes_of_eight_tasks_run_the_loader_once_per_round() {
    let server = Server::start();
    let coord = Server::start();
    let spec = stampede::Spec {
        rounds: 10,
        asynchronous: true,
        ..stampede::Spec::new(server.url(), vec![server.url()], coord.url())
    };
    stampede::run("child_stampede", &spec).assert_once_per_round(10, 80);
}

/// A caller waiting on another process's lease gives up at the `load_hard_timeout`, without
/// running its loader.
#[test]
fn a_wait_for_another_process_stops_at_the_hard_timeout() {
    let server = Server::start();
    let cache: FlipCache<String, String> = server
        .builder("hard")
        .distributed_lock(Duration::from_secs(10))
        .load_hard_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut raw = server.raw();
    let _: () = raw
        .set("__flipcache__:lease:hard:k", "someone-else")
        .unwrap();
    let started = Instant::now();
    let err = cache
        .get_with("k", || -> String {
            panic!("the holder loads, not this process")
        })
        .unwrap_err();
    assert!(err.is_load_timeout(), "{err}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    println!("gave up after {took:?}");
}

fn lease_cache(server: &Server, name: &str, lease: Duration) -> FlipCache<String, String> {
    server
        .builder(name)
        .distributed_lock(lease)
        .timeout(Duration::from_millis(500))
        .build()
        .expect("build")
}

/// The child side of the takeover test: takes the lease and hangs in its loader until killed.
/// Run only by that test; run any other way it fails.
#[test]
#[ignore = "a child process of a_holder_killed_mid_load_is_taken_over_when_its_lease_ends"]
fn child_hanging_holder() {
    let url = std::env::var("LEASE_CHILD_URL").expect("run only as a child process");
    let coord = std::env::var("LEASE_CHILD_COORD").expect("run only as a child process");
    let server_url = url.clone();
    let cache: FlipCache<String, String> = FlipCache::builder("takeover")
        .redis_url(&server_url)
        .tracking(support::tracking())
        .distributed_lock(Duration::from_secs(1))
        .build()
        .expect("build");
    let got = cache.get_with("victim", move || {
        let mut c = redis::Client::open(coord.as_str())
            .and_then(|c| c.get_connection())
            .expect("coordination");
        let _: () = c.set("loading", 1).expect("SET loading");
        std::thread::sleep(Duration::from_secs(60));
        "from the hung holder".to_string()
    });
    println!("LEASE_CHILD finished {got:?}");
}

#[test]
fn a_holder_killed_mid_load_is_taken_over_when_its_lease_ends() {
    let server = Server::start();
    let coord = Server::start();
    let mut child = spawn_child(
        "child_hanging_holder",
        &[
            ("LEASE_CHILD_URL", server.url()),
            ("LEASE_CHILD_COORD", coord.url()),
            (
                "FLIPCACHE_TEST_TRACKING",
                std::env::var("FLIPCACHE_TEST_TRACKING").unwrap_or_default(),
            ),
        ],
    );
    let mut c = coord.raw();
    eventually(
        Duration::from_secs(30),
        "the child to hold the lease",
        || c.exists::<_, bool>("loading").unwrap_or(false),
    );
    let mut raw = server.raw();
    let left: i64 = raw.pttl("__flipcache__:lease:takeover:victim").unwrap();
    assert!(left > 0, "the holder's lease exists with a TTL: {left}");
    let lease_ends = Instant::now() + Duration::from_millis(left as u64);
    child.kill(); // SIGKILL

    let cache = lease_cache(&server, "takeover", Duration::from_secs(1));
    let started = Arc::new(std::sync::Mutex::new(None));
    let s = started.clone();
    let v = cache
        .get_with("victim", move || {
            *s.lock().unwrap() = Some(Instant::now());
            "taken over".to_string()
        })
        .unwrap();
    assert_eq!(v, "taken over");
    let started = started
        .lock()
        .unwrap()
        .expect("this process ran the loader");
    let late = started.saturating_duration_since(lease_ends);
    let early = lease_ends.saturating_duration_since(started);
    println!("took over {late:?} after the lease ended ({early:?} early)");
    // It waited for the lease (PTTL is in whole milliseconds, read after the lease was taken)...
    assert!(
        early <= Duration::from_millis(5),
        "took over {early:?} early"
    );
    // ...and took over as it ended (generous bound: this machine runs other work).
    assert!(late < Duration::from_millis(500), "took over {late:?} late");
    assert_eq!(
        raw.get::<_, String>("takeover:victim").unwrap(),
        "taken over"
    );
}

#[test]
fn redis_down_falls_back_to_the_process_single_flight() {
    let mut server = Server::start();
    let cache = lease_cache(&server, "down", Duration::from_secs(5));
    server.stop();
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    let got: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let cache = &cache;
                s.spawn(move || {
                    cache.get_with("k", || {
                        LOADS.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        "loaded".to_string()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in got {
        assert_eq!(g.expect("no error from the lease alone"), "loaded");
    }
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);
}

#[test]
fn the_lease_lives_outside_the_layout_and_is_released_after_the_write() {
    let server = Server::start();
    let cache = lease_cache(&server, "layout", Duration::from_secs(30));
    let mut raw = server.raw();
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let cache = &cache;
        s.spawn(move || {
            cache
                .get_with("k", move || {
                    tx.send(()).unwrap();
                    // Bounded, so a failing assertion below cannot hang the test.
                    let _ = go_rx.recv_timeout(Duration::from_secs(10));
                    "v".to_string()
                })
                .unwrap()
        });
        rx.recv().unwrap();
        // While loading: the lease exists, with its TTL, and the cache does not see it.
        let ttl: i64 = raw.pttl("__flipcache__:lease:layout:k").unwrap();
        assert!(ttl > 25_000 && ttl <= 30_000, "lease TTL {ttl}");
        assert_eq!(cache.len().unwrap(), 0);
        assert!(cache.keys().unwrap().is_empty());
        let all: Vec<String> = raw.keys("layout:*").unwrap();
        assert!(all.is_empty(), "{all:?}");
        go_tx.send(()).unwrap();
    });
    assert_eq!(raw.get::<_, String>("layout:k").unwrap(), "v");
    eventually(Duration::from_secs(5), "the lease to be released", || {
        !raw.exists::<_, bool>("__flipcache__:lease:layout:k")
            .unwrap()
    });
    // `clear` leaves other caches' leases and its own absent lease alone, and works.
    assert_eq!(cache.clear().unwrap(), 1);
}

/// A lease taken by someone else is respected by this process (it waits for the value), and
/// the value arriving wakes it through the invalidation push at once, well before the lease
/// or the slow poll would.
#[test]
fn a_waiter_is_woken_by_the_value_write() {
    let server = Server::start();
    let cache = lease_cache(&server, "wake", Duration::from_secs(20));
    let mut raw = server.raw();
    // Another process's lease (20 s; the slow poll is then 1 s).
    let _: () = redis::cmd("SET")
        .arg("__flipcache__:lease:wake:k")
        .arg("someone-else")
        .arg("PX")
        .arg(20_000)
        .query(&mut raw)
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    std::thread::scope(|s| {
        let cache = &cache;
        let waiter = s.spawn(move || {
            cache.get_with("k", move || {
                l.fetch_add(1, Ordering::SeqCst);
                "mine".to_string()
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "the waiter waits for the holder");
        let written = Instant::now();
        let _: () = raw.set("wake:k", "theirs").unwrap();
        let got = waiter.join().unwrap().unwrap();
        let took = written.elapsed();
        assert_eq!(got, "theirs");
        println!("woken {took:?} after the write");
        // Far below the 1 s slow poll: the push woke it.
        assert!(took < Duration::from_millis(700), "woken after {took:?}");
    });
    assert_eq!(loads.load(Ordering::SeqCst), 0);
}

/// The child side of the memo test: calls the memoized function once. Run only by that test;
/// run any other way it fails.
#[test]
#[ignore = "a child process of a_memoized_function_loads_once_across_processes"]
fn child_memo_caller() {
    let url = std::env::var("LEASE_CHILD_URL").expect("run only as a child process");
    let coord = std::env::var("LEASE_CHILD_COORD").expect("run only as a child process");
    // Set before any memoized call of this process reads them.
    MEMO_COORD.set(coord).unwrap();
    MEMO_URL.set(url).unwrap();
    println!("LEASE_CHILD got {}", slow_report(7));
}

static MEMO_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static MEMO_COORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn memo_redis() -> redis::Client {
    redis::Client::open(MEMO_URL.get().expect("set by the test").as_str()).unwrap()
}

#[flipcache::flipcache(
    name = "lease_memo",
    redis = memo_redis(),
    timeout_ms = 2000,
    distributed_lock = std::time::Duration::from_secs(5)
)]
fn slow_report(id: u64) -> String {
    let mut c = redis::Client::open(MEMO_COORD.get().expect("set by the test").as_str())
        .and_then(|c| c.get_connection())
        .unwrap();
    let _: () = c.incr("memo_loads", 1).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    format!("report {id} by {}", std::process::id())
}

#[test]
fn a_memoized_function_loads_once_across_processes() {
    let server = Server::start();
    let coord = Server::start();
    let envs = [
        ("LEASE_CHILD_URL", server.url()),
        ("LEASE_CHILD_COORD", coord.url()),
    ];
    let children: Vec<_> = (0..3)
        .map(|_| spawn_child("child_memo_caller", &envs))
        .collect();
    let got: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.output();
            child_said("child_memo_caller", &out, "LEASE_CHILD got ")
        })
        .collect();
    let mut c = coord.raw();
    assert_eq!(c.get::<_, u64>("memo_loads").unwrap(), 1, "{got:?}");
    assert!(got.iter().all(|g| g == &got[0]), "{got:?}");
}

/// With `stale_for`, a stale value is served at once while the key is refreshed in the
/// background, under the lease: a refresh finding the lease held by another process leaves the
/// key to it (its write reaches this L1), and one finding it free loads.
#[test]
fn background_refreshes_take_the_lease_or_leave_the_key_to_its_holder() {
    let server = Server::start();
    let cache: FlipCache<String, String> = server
        .builder("swr_lease")
        .expire_time(Duration::from_secs(1))
        .stale_for(Duration::from_secs(60))
        .distributed_lock(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut raw = server.raw();
    let stale = |raw: &mut redis::Connection, value: &str| {
        // Within the last 60 s of its life: stale.
        let _: () = redis::cmd("SET")
            .arg("swr_lease:k")
            .arg(value)
            .arg("PX")
            .arg(30_000)
            .query(raw)
            .unwrap();
    };
    let loads = Arc::new(AtomicUsize::new(0));
    let loader = |loads: &Arc<AtomicUsize>| {
        let loads = loads.clone();
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            "refreshed".to_string()
        }
    };
    // Another process holds the lease: the stale value is served, the refresh left to it.
    stale(&mut raw, "old");
    let _: () = raw
        .set("__flipcache__:lease:swr_lease:k", "someone-else")
        .unwrap();
    assert_eq!(cache.get_with("k", loader(&loads)).unwrap(), "old");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        0,
        "the holder's refresh is not repeated"
    );
    let s = cache.stats();
    assert_eq!(
        (s.loads, s.refreshes),
        (0, 0),
        "a refresh left to the holder neither loads nor refreshes: {s:?}"
    );
    let _: () = raw.set("swr_lease:k", "theirs").unwrap();
    eventually(
        Duration::from_secs(5),
        "the holder's value to arrive",
        || cache.get_with("k", loader(&loads)).unwrap() == "theirs",
    );
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    // The lease is free: a stale hit refreshes, once, under the lease.
    let _: () = raw.del("__flipcache__:lease:swr_lease:k").unwrap();
    stale(&mut raw, "old again");
    eventually(Duration::from_secs(5), "the stale value to be seen", || {
        cache.get_with("k", loader(&loads)).unwrap() == "old again"
    });
    eventually(Duration::from_secs(5), "the refresh to land", || {
        raw.get::<_, String>("swr_lease:k").unwrap() == "refreshed"
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

/// One cold `get_with` under the lease is one lookup: one miss, one load (the lease's second
/// look at the key counts no miss of its own).
#[test]
fn a_cold_load_under_the_lease_counts_one_miss() {
    let server = Server::start();
    let cache = lease_cache(&server, "lease_counts", Duration::from_secs(5));
    assert_eq!(cache.get_with("k", || "v".to_string()).unwrap(), "v");
    let s = cache.stats();
    assert_eq!((s.misses, s.remote_hits, s.loads), (1, 0, 1), "{s:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aio = cache.to_async();
    let got = rt
        .block_on(aio.get_with("j", async { "w".to_string() }))
        .unwrap();
    assert_eq!(got, "w");
    let s = cache.stats();
    assert_eq!((s.misses, s.remote_hits, s.loads), (2, 0, 2), "{s:?}");
}
