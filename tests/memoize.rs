//! `#[flipcache]` against real, private Redis servers: memoization proved by call counters,
//! a second process reading the first one's results, keys as Redis shows them, TTLs,
//! `Result`/`Option` rules, single-flight for threads and tasks (with a leader that panics or
//! is cancelled), fail-open with Redis stopped, slow or holding garbage, and the companions.
//!
//! Each test starts its own server and points its functions at it through `redis = CELL.get()`,
//! a `static` it fills before the first call; nothing depends on a Redis you may run.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use flipcache::flipcache;
use redis::Commands;
use support::Server;

/// Starts a server for one test and publishes its URL to the test's functions.
fn serve(cell: &'static OnceLock<String>) -> Server {
    let server = Server::start();
    cell.set(server.url())
        .expect("each URL cell serves one test");
    server
}

fn runs(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::SeqCst);
}

// ---- log capture -------------------------------------------------------------------------

/// How many events at `level` name the cache `name` (see `support::capture`).
fn logged(level: Level, name: &str) -> usize {
    support::capture::events(level, &[&format!("cache={name} ")])
}

use tracing::Level;

// ---- memoization and keys ----------------------------------------------------------------

static KEYS_URL: OnceLock<String> = OnceLock::new();
static FIB_RUNS: AtomicUsize = AtomicUsize::new(0);
static USER_RUNS: AtomicUsize = AtomicUsize::new(0);
static GREET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_fib", redis = KEYS_URL.get(), local_max = 1_000, expire_time = 60)]
fn fib(n: u64) -> u64 {
    bump(&FIB_RUNS);
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

#[flipcache(name = "t_user", redis = KEYS_URL.get())]
fn user(name: &str) -> String {
    bump(&USER_RUNS);
    format!("Hello, {name}")
}

#[flipcache(name = "t_greet", redis = KEYS_URL.get())]
fn greet(name: &str, times: u32, tags: &[&str], extra: Option<u8>) -> String {
    bump(&GREET_RUNS);
    format!("{name}x{times}{tags:?}{extra:?}")
}

#[flipcache(name = "t_config", redis = KEYS_URL.get())]
fn config() -> String {
    "on".to_string()
}

#[flipcache(redis = KEYS_URL.get())]
fn defaulted(n: i32) -> i64 {
    i64::from(n) * 2
}

#[test]
fn memoizes_and_writes_readable_keys() {
    let server = serve(&KEYS_URL);
    let mut raw = server.raw();

    assert_eq!(fib(42), 267_914_296);
    // Memoized recursion: each n ran once.
    assert_eq!(runs(&FIB_RUNS), 43);
    assert_eq!(fib(42), 267_914_296);
    assert_eq!(fib(40), 102_334_155);
    assert_eq!(runs(&FIB_RUNS), 43);
    let stored: String = raw.get("t_fib:42").unwrap();
    assert_eq!(stored, "267914296");
    let ttl: i64 = raw.ttl("t_fib:42").unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "expire_time = 60 means 60 s, got {ttl}"
    );

    assert_eq!(user("alice"), "Hello, alice");
    assert_eq!(user(&String::from("alice")), "Hello, alice");
    assert_eq!(runs(&USER_RUNS), 1);
    let stored: String = raw.get("t_user:alice").unwrap();
    assert_eq!(stored, "Hello, alice");
    // A single string is the key as it is, commas and all.
    user("a,b");
    assert!(raw.exists::<_, bool>("t_user:a,b").unwrap());

    let a = greet("a,b", 3, &["x", "y,z"], None);
    let b = greet("a", 3, &["x", "y,z"], None);
    assert_ne!(a, b);
    assert_eq!(greet("a,b", 3, &["x", "y,z"], None), a);
    assert_eq!(runs(&GREET_RUNS), 2);
    let mut keys: Vec<String> = raw.keys("t_greet:*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [r"t_greet:a,3,[x,y\,z],~", r"t_greet:a\,b,3,[x,y\,z],~"]
    );
    greet("a", 3, &[], Some(7));
    assert!(raw.exists::<_, bool>("t_greet:a,3,[],7").unwrap());

    assert_eq!(config(), "on");
    assert!(raw.exists::<_, bool>("t_config:").unwrap());

    assert_eq!(defaulted(-4), -8);
    let cache = defaulted_cache().unwrap();
    assert_eq!(cache.name(), "memoize::defaulted");
    assert!(raw.exists::<_, bool>("memoize::defaulted:-4").unwrap());
}

// ---- a second process --------------------------------------------------------------------

static SHARED_URL: OnceLock<String> = OnceLock::new();
static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_shared", redis = SHARED_URL.get())]
fn shared(n: u64) -> u64 {
    bump(&SHARED_RUNS);
    n * n
}

/// Runs `shared(n)` in a fresh process of this test binary; says (ran the body, value).
fn in_child(url: &str, n: u64) -> (bool, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MEMO_CHILD_URL", url)
        .env("MEMO_CHILD_ARG", n.to_string())
        .output()
        .expect("spawn the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("MEMO_CHILD ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "child said nothing: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let (ran, value) = line.split_once(' ').unwrap();
    (
        ran == "ran=true",
        value.trim_start_matches("value=").parse().unwrap(),
    )
}

/// The child's side of `a_second_process_reads_the_first_ones_results`, which starts it with
/// `--ignored` and the variables it needs; ignored in a normal run, and it fails if started
/// any other way (it can never pass without doing its work).
#[test]
#[ignore = "the child process of `a_second_process_reads_the_first_ones_results`, which runs it"]
fn child_process_entry() {
    let run_by = "set by `a_second_process_reads_the_first_ones_results`, which runs this test";
    let url = std::env::var("MEMO_CHILD_URL").expect(run_by);
    let arg = std::env::var("MEMO_CHILD_ARG").expect(run_by);
    SHARED_URL.set(url).unwrap();
    let value = shared(arg.parse().unwrap());
    println!("MEMO_CHILD ran={} value={value}", runs(&SHARED_RUNS) > 0);
}

#[test]
fn a_second_process_reads_the_first_ones_results() {
    let server = serve(&SHARED_URL);
    assert_eq!(shared(7), 49);
    assert_eq!(runs(&SHARED_RUNS), 1);
    // Another process finds it in Redis and does not run the body.
    assert_eq!(in_child(&server.url(), 7), (false, 49));
    // What another process computes, this one reads without running the body.
    assert_eq!(in_child(&server.url(), 8), (true, 64));
    assert_eq!(shared(8), 64);
    assert_eq!(runs(&SHARED_RUNS), 1);
}

// ---- TTL, Result and Option --------------------------------------------------------------

static TTL_URL: OnceLock<String> = OnceLock::new();
static RULES_URL: OnceLock<String> = OnceLock::new();
static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);
static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);
static IO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_ttl", redis = TTL_URL.get(), expire_time = Duration::from_millis(400))]
fn short_lived(n: u64) -> u64 {
    bump(&TTL_RUNS);
    n + 1
}

#[flipcache(name = "t_parse", redis = RULES_URL.get())]
fn parse_num(s: &str) -> Result<u64, String> {
    bump(&PARSE_RUNS);
    s.parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

#[flipcache(name = "t_find", redis = RULES_URL.get())]
fn find_even(n: u32) -> Option<u32> {
    bump(&FIND_RUNS);
    n.is_multiple_of(2).then_some(n / 2)
}

#[flipcache(name = "t_io", redis = RULES_URL.get())]
fn io_len(path: &str) -> std::io::Result<u64> {
    bump(&IO_RUNS);
    if path.is_empty() {
        Err(std::io::Error::other("empty path"))
    } else {
        Ok(path.len() as u64)
    }
}

#[test]
fn entries_expire_with_their_ttl() {
    let server = serve(&TTL_URL);
    let mut raw = server.raw();
    assert_eq!(short_lived(1), 2);
    assert_eq!(short_lived(1), 2);
    assert_eq!(runs(&TTL_RUNS), 1);
    let pttl: i64 = raw.pttl("t_ttl:1").unwrap();
    assert!((1..=400).contains(&pttl), "pttl {pttl}");
    support::eventually(Duration::from_secs(3), "t_ttl:1 to expire", || {
        !raw.exists::<_, bool>("t_ttl:1").unwrap()
    });
    // Gone from Redis means gone from the L1 too (its deadline is the Redis TTL).
    assert_eq!(short_lived(1), 2);
    assert_eq!(runs(&TTL_RUNS), 2);
}

#[test]
fn results_cache_only_ok_and_options_only_some() {
    let server = serve(&RULES_URL);
    let mut raw = server.raw();

    assert_eq!(parse_num("12"), Ok(12));
    assert_eq!(parse_num("12"), Ok(12));
    assert_eq!(runs(&PARSE_RUNS), 1);
    assert!(parse_num("x").is_err());
    assert!(parse_num("x").is_err());
    assert_eq!(runs(&PARSE_RUNS), 3);

    assert_eq!(find_even(4), Some(2));
    assert_eq!(find_even(4), Some(2));
    assert_eq!(find_even(3), None);
    assert_eq!(find_even(3), None);
    assert_eq!(runs(&FIND_RUNS), 3);

    assert_eq!(io_len("abc").unwrap(), 3);
    assert_eq!(io_len("abc").unwrap(), 3);
    assert!(io_len("").is_err());
    assert!(io_len("").is_err());
    assert_eq!(runs(&IO_RUNS), 3);

    let stored: String = raw.get("t_parse:12").unwrap();
    assert_eq!(stored, "12");
    assert!(!raw.exists::<_, bool>("t_parse:x").unwrap());
    assert!(raw.exists::<_, bool>("t_find:4").unwrap());
    assert!(!raw.exists::<_, bool>("t_find:3").unwrap());
}

// ---- single-flight -----------------------------------------------------------------------

static FLIGHT_URL: OnceLock<String> = OnceLock::new();
static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_slow", redis = FLIGHT_URL.get())]
fn slow_double(n: u64) -> u64 {
    bump(&SLOW_RUNS);
    std::thread::sleep(Duration::from_millis(200));
    n * 2
}

#[flipcache(name = "t_flaky", redis = FLIGHT_URL.get())]
fn flaky(n: u64) -> u64 {
    let attempt = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert!(attempt > 0, "the first attempt fails");
    n
}

static FIRST_FAILS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_first_fails", redis = FLIGHT_URL.get())]
fn first_fails(n: u64) -> Result<u64, String> {
    let attempt = FIRST_FAILS_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    if attempt == 0 {
        Err("first".into())
    } else {
        Ok(n)
    }
}

#[test]
fn sixteen_threads_run_the_body_once() {
    let _server = serve(&FLIGHT_URL);
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                slow_double(21)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 42);
    }
    assert_eq!(runs(&SLOW_RUNS), 1);

    // A leader that panics hands over to one waiter; the others share that one's value.
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                flaky(5)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results.iter().flatten().all(|v| *v == 5));
    assert_eq!(runs(&FLAKY_RUNS), 2);

    // A leader whose result is not cached (`Err`) sends each waiter to the body.
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                first_fails(9)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(runs(&FIRST_FAILS_RUNS), 4);
    assert_eq!(first_fails(9), Ok(9));
    assert_eq!(runs(&FIRST_FAILS_RUNS), 4, "a waiter's Ok was stored");
}

static TASKS_URL: OnceLock<String> = OnceLock::new();
static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
static CANCEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_async_slow", redis = TASKS_URL.get())]
async fn slow_triple(n: u64) -> u64 {
    bump(&ASYNC_RUNS);
    tokio::time::sleep(Duration::from_millis(200)).await;
    n * 3
}

#[flipcache(name = "t_cancel", redis = TASKS_URL.get())]
async fn cancellable(n: u64) -> u64 {
    if CANCEL_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The first leader never finishes; it will be cancelled.
        std::future::pending::<()>().await;
    }
    n + 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_tasks_run_the_body_once() {
    let _server = serve(&TASKS_URL);
    let tasks: Vec<_> = (0..100).map(|_| tokio::spawn(slow_triple(14))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(runs(&ASYNC_RUNS), 1);

    // A cancelled leader hands over to one waiter.
    let leader = tokio::spawn(cancellable(1));
    while runs(&CANCEL_RUNS) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(cancellable(1))).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    for w in waiters {
        assert_eq!(w.await.unwrap(), 101);
    }
    assert_eq!(runs(&CANCEL_RUNS), 2);
}

// ---- fail-open ---------------------------------------------------------------------------

static DOWN_URL: OnceLock<String> = OnceLock::new();
static DOWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_down", redis = DOWN_URL.get(), timeout_ms = 200)]
fn plus_one(n: u64) -> u64 {
    bump(&DOWN_RUNS);
    n + 1
}

/// Calls `f(k)` with fresh keys until one shows up in Redis (Redis is probed about once a
/// second while a function is degraded).
/// Returns the first key stored.
fn until_stored(server: &Server, prefix: &str, f: impl Fn(u64) -> u64) -> u64 {
    let mut raw = server.raw();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut k = 1_000;
    loop {
        f(k);
        if raw.exists::<_, bool>(format!("{prefix}:{k}")).unwrap() {
            return k;
        }
        assert!(Instant::now() < deadline, "calls never reached Redis again");
        std::thread::sleep(Duration::from_millis(50));
        k += 1;
    }
}

#[test]
fn a_stopped_redis_never_breaks_the_function_and_is_used_again_when_back() {
    support::capture::install();
    let mut server = serve(&DOWN_URL);
    assert_eq!(plus_one(1), 2);
    assert_eq!(plus_one(1), 2);
    assert_eq!(runs(&DOWN_RUNS), 1);

    server.stop();
    assert_eq!(plus_one(2), 3);
    assert_eq!(runs(&DOWN_RUNS), 2);
    // Kept in process memory meanwhile.
    assert_eq!(plus_one(2), 3);
    assert_eq!(runs(&DOWN_RUNS), 2);
    for n in 3..10 {
        assert_eq!(plus_one(n), n + 1);
    }
    assert_eq!(runs(&DOWN_RUNS), 9);
    assert_eq!(
        logged(Level::WARN, "t_down"),
        1,
        "one warning, not one per call"
    );
    assert_eq!(logged(Level::INFO, "t_down"), 0);

    server.restart();
    until_stored(&server, "t_down", plus_one);
    assert_eq!(
        logged(Level::INFO, "t_down"),
        1,
        "one info when Redis is back"
    );
    assert_eq!(logged(Level::WARN, "t_down"), 1);
    let mut raw = server.raw();
    plus_one(5_000);
    assert!(raw.exists::<_, bool>("t_down:5000").unwrap());
}

static LATE_URL: OnceLock<String> = OnceLock::new();
static LATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_late", redis = LATE_URL.get(), timeout_ms = 200)]
fn late(n: u64) -> u64 {
    bump(&LATE_RUNS);
    n * 10
}

#[test]
fn redis_down_at_the_first_call_still_keeps_results_locally_and_connects_later() {
    support::capture::install();
    let mut server = serve(&LATE_URL);
    server.stop();
    assert_eq!(late(1), 10);
    assert_eq!(late(1), 10);
    // The cache is built without Redis (lazy connect): the result was kept in the L1.
    assert_eq!(runs(&LATE_RUNS), 1);
    assert_eq!(logged(Level::WARN, "t_late"), 1);
    let cache = late_cache().expect("built without Redis");
    assert!(cache.local_contains(&1));
    assert!(late_invalidate(1).is_err(), "Redis is still down");

    server.restart();
    let k = until_stored(&server, "t_late", late);
    assert_eq!(logged(Level::INFO, "t_late"), 1);
    let before = runs(&LATE_RUNS);
    assert_eq!(late(k), k * 10);
    assert_eq!(runs(&LATE_RUNS), before);
}

static SLOW_REDIS_URL: OnceLock<String> = OnceLock::new();
static SLOW_REDIS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_slow_redis", redis = SLOW_REDIS_URL.get(), timeout_ms = 100)]
fn cube(n: u64) -> u64 {
    bump(&SLOW_REDIS_RUNS);
    n * n * n
}

#[test]
fn a_slow_redis_is_skipped_after_the_timeout() {
    support::capture::install();
    let server = serve(&SLOW_REDIS_URL);
    assert_eq!(cube(2), 8);
    let mut raw = server.raw();
    // Every other client waits 700 ms for its next command.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(700)
        .arg("ALL")
        .query(&mut raw)
        .unwrap();
    let t = Instant::now();
    assert_eq!(cube(3), 27);
    let took = t.elapsed();
    assert_eq!(runs(&SLOW_REDIS_RUNS), 2);
    assert!(
        took < Duration::from_millis(650),
        "the call waited for Redis: {took:?}"
    );
    assert_eq!(logged(Level::WARN, "t_slow_redis"), 1);
    assert_eq!(cube(3), 27);
    assert_eq!(runs(&SLOW_REDIS_RUNS), 2);
}

static BAD_URL: OnceLock<String> = OnceLock::new();
static BAD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_bad", redis = BAD_URL.get())]
fn square_of(n: u64) -> u64 {
    bump(&BAD_RUNS);
    n * n
}

#[test]
fn a_value_that_does_not_decode_is_recomputed_and_replaced() {
    support::capture::install();
    let server = serve(&BAD_URL);
    let mut raw = server.raw();
    let _: () = raw.set("t_bad:5", "not a number").unwrap();
    assert_eq!(square_of(5), 25);
    assert_eq!(runs(&BAD_RUNS), 1);
    let stored: String = raw.get("t_bad:5").unwrap();
    assert_eq!(stored, "25");
    assert_eq!(logged(Level::WARN, "t_bad"), 1);
    let _: () = raw.set("t_bad:6", "garbage").unwrap();
    assert_eq!(square_of(6), 36);
    assert_eq!(logged(Level::WARN, "t_bad"), 1, "warned once per function");
}

// ---- companions, methods, JSON -----------------------------------------------------------

static COMP_URL: OnceLock<String> = OnceLock::new();
static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);
static STOCK_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_square", redis = COMP_URL.get())]
fn square(n: u64) -> u64 {
    bump(&SQUARE_RUNS);
    n * n
}

struct Shop {
    region: String,
}

impl Shop {
    #[flipcache(name = "t_stock", key = (self.region.as_str(), sku), redis = COMP_URL.get())]
    fn stock(&self, sku: u32) -> u64 {
        bump(&STOCK_RUNS);
        u64::from(sku) * 10 + self.region.len() as u64
    }

    #[flipcache(name = "t_tax", in_impl, redis = COMP_URL.get())]
    fn tax(cents: u64) -> u64 {
        cents / 5
    }

    #[flipcache(name = "t_label", redis = COMP_URL.get())]
    fn label(&mut self, mut sku: u32) -> String {
        sku += 1;
        format!("{}-{sku}", self.region)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    name: String,
    followers: u32,
}

#[flipcache(name = "t_profile", json, redis = COMP_URL.get())]
fn profile(id: u64) -> Profile {
    Profile {
        name: format!("user{id}"),
        followers: 3,
    }
}

#[test]
fn companions_methods_and_json() {
    let server = serve(&COMP_URL);
    let mut raw = server.raw();

    square_prime(12, 145).unwrap();
    assert_eq!(square(12), 145);
    assert_eq!(runs(&SQUARE_RUNS), 0);
    assert!(square_invalidate(12).unwrap());
    assert!(!raw.exists::<_, bool>("t_square:12").unwrap());
    assert_eq!(square(12), 144);
    assert_eq!(runs(&SQUARE_RUNS), 1);
    assert_eq!(square_uncached(3), 9);
    assert_eq!(runs(&SQUARE_RUNS), 2);
    assert!(!raw.exists::<_, bool>("t_square:3").unwrap());
    let cache = square_cache().unwrap();
    assert_eq!(cache.name(), "t_square");
    assert_eq!(cache.get(&12).unwrap(), Some(144));

    let eu = Shop {
        region: "eu".into(),
    };
    let us = Shop {
        region: "us".into(),
    };
    assert_eq!(eu.stock(7), 72);
    assert_eq!(us.stock(7), 72);
    assert_eq!(eu.stock(7), 72);
    assert_eq!(runs(&STOCK_RUNS), 2);
    let mut keys: Vec<String> = raw.keys("t_stock:*").unwrap();
    keys.sort();
    assert_eq!(keys, ["t_stock:eu,7", "t_stock:us,7"]);
    assert!(eu.stock_invalidate(7).unwrap());
    eu.stock_prime(8, 1).unwrap();
    assert_eq!(eu.stock(8), 1);
    assert_eq!(Shop::stock_cache().unwrap().name(), "t_stock");

    assert_eq!(Shop::tax(100), 20);
    assert!(raw.exists::<_, bool>("t_tax:100").unwrap());
    assert!(Shop::tax_invalidate(100).unwrap());
    assert_eq!(Shop::tax_uncached(50), 10);

    let mut shop = Shop { region: "x".into() };
    assert_eq!(shop.label(1), "x-2");
    assert_eq!(shop.label_uncached(1), "x-2");
    assert!(raw.exists::<_, bool>("t_label:1").unwrap());

    let p = profile(9);
    assert_eq!(p.name, "user9");
    let stored: String = raw.get("t_profile:9").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        serde_json::json!({"name": "user9", "followers": 3})
    );
    profile_invalidate(9).unwrap();
    profile_prime(
        9,
        Profile {
            name: "primed".into(),
            followers: 0,
        },
    )
    .unwrap();
    assert_eq!(profile(9).name, "primed");
}

static ASYNC_COMP_URL: OnceLock<String> = OnceLock::new();
static ASQ_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_asquare", redis = ASYNC_COMP_URL.get(), expire_time = 30)]
async fn async_square(n: u64) -> Result<u64, String> {
    bump(&ASQ_RUNS);
    if n == 0 {
        Err("zero".into())
    } else {
        Ok(n * n)
    }
}

struct Catalog;

impl Catalog {
    #[flipcache(name = "t_price", redis = ASYNC_COMP_URL.get())]
    async fn price(&self, sku: &str) -> Option<u64> {
        tokio::task::yield_now().await;
        (!sku.is_empty()).then(|| sku.len() as u64 * 100)
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_functions_and_their_companions() {
    let server = serve(&ASYNC_COMP_URL);
    let mut raw = server.raw();
    assert_eq!(assert_send(async_square(4)).await, Ok(16));
    assert_eq!(async_square(4).await, Ok(16));
    assert_eq!(runs(&ASQ_RUNS), 1);
    assert!(async_square(0).await.is_err());
    assert!(async_square(0).await.is_err());
    assert_eq!(runs(&ASQ_RUNS), 3);
    async_square_prime(5, 26).await.unwrap();
    assert_eq!(async_square(5).await, Ok(26));
    assert!(async_square_invalidate(5).await.unwrap());
    assert_eq!(async_square(5).await, Ok(25));
    assert_eq!(async_square_uncached(6).await, Ok(36));
    let cache = async_square_cache().await.unwrap();
    assert_eq!(cache.get(&4).await.unwrap(), Some(16));
    assert_eq!(cache.expire_time(), Some(Duration::from_secs(30)));

    let c = Catalog;
    assert_eq!(assert_send(c.price("abc")).await, Some(300));
    assert_eq!(c.price("").await, None);
    assert!(raw.exists::<_, bool>("t_price:abc").unwrap());
    assert!(!raw.exists::<_, bool>("t_price:").unwrap());
    assert!(Catalog::price_invalidate("abc").await.unwrap());
}

// ---- signatures ------------------------------------------------------------------------

static EDGE_URL: OnceLock<String> = OnceLock::new();

/// Documented, `must_use`, with a named lifetime and a `mut` argument.
#[must_use]
#[flipcache(name = "t_edge_lifetime", redis = EDGE_URL.get())]
#[allow(clippy::needless_lifetimes)] // a named lifetime is the point here
pub(crate) fn shout<'a>(mut text: &'a str, times: usize) -> String {
    text = text.trim();
    text.to_uppercase().repeat(times)
}

#[flipcache(name = "t_edge_raw", redis = EDGE_URL.get())]
fn r#match(value: u8) -> u8 {
    value + 1
}

#[flipcache(name = "t_edge_key", key = format!("{a}+{b}"), redis = EDGE_URL.get())]
#[expect(clippy::too_many_arguments)]
fn add(a: u8, b: u8, _c: u8, _d: u8, _e: u8, _f: u8, _g: u8, _h: u8) -> u16 {
    u16::from(a) + u16::from(b)
}

#[flipcache(name = "t_edge_none", redis = EDGE_URL.get())]
async fn nothing_to_key() -> u32 {
    7
}

struct Counter {
    base: u64,
}

impl Counter {
    #[flipcache(name = "t_edge_arc", redis = EDGE_URL.get())]
    fn on_arc(self: Arc<Self>, n: u64) -> u64 {
        self.base + n
    }

    #[flipcache(name = "t_edge_owned", redis = EDGE_URL.get())]
    fn consume(self, n: u64) -> u64 {
        self.base * n
    }

    #[flipcache(name = "t_edge_mut", redis = EDGE_URL.get())]
    async fn bump_async(&mut self, n: u64) -> u64 {
        self.base += 1;
        n
    }

    /// Names `Self`, so no `in_impl` is needed.
    #[flipcache(name = "t_edge_self", redis = EDGE_URL.get())]
    fn via_self(n: u64) -> u64 {
        Self::helper(n)
    }

    fn helper(n: u64) -> u64 {
        n * 3
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_signatures_work() {
    let server = serve(&EDGE_URL);
    let mut raw = server.raw();
    let s = String::from(" hi ");
    assert_eq!(shout(&s, 2), "HIHI");
    assert!(raw.exists::<_, bool>("t_edge_lifetime: hi ,2").unwrap());
    assert!(shout_invalidate(&s, 2).unwrap());
    assert_eq!(r#match(1), 2);
    r#match_prime(1, 5).unwrap();
    assert_eq!(r#match(1), 5);
    assert_eq!(add(1, 2, 0, 0, 0, 0, 0, 0), 3);
    assert!(raw.exists::<_, bool>("t_edge_key:1+2").unwrap());
    assert_eq!(
        add(1, 2, 9, 9, 9, 9, 9, 9),
        3,
        "the key ignores the other arguments"
    );
    assert_eq!(nothing_to_key().await, 7);
    assert!(raw.exists::<_, bool>("t_edge_none:").unwrap());
    assert_eq!(Arc::new(Counter { base: 1 }).on_arc(2), 3);
    assert_eq!(Counter { base: 2 }.consume(3), 6);
    let mut c = Counter { base: 0 };
    assert_eq!(c.bump_async(4).await, 4);
    assert_eq!(c.bump_async(4).await, 4);
    assert_eq!(c.base, 1, "the second call was memoized");
    assert_eq!(Counter::via_self(2), 6);
    assert!(Counter::via_self_invalidate(2).unwrap());
}

// ---- tracking mode -------------------------------------------------------------------------

static BCAST_URL: OnceLock<String> = OnceLock::new();
static KEYED_URL: OnceLock<String> = OnceLock::new();

#[flipcache(name = "t_bcast", redis = BCAST_URL.get(), tracking = "broadcast")]
fn bcast(n: u64) -> u64 {
    n
}

#[flipcache(name = "t_keyed", redis = KEYED_URL.get(), tracking = "keys")]
fn keyed(n: u64) -> u64 {
    n
}

/// `INFO stats`' `tracking_total_keys` and `tracking_total_prefixes`.
fn tracking_stats(raw: &mut redis::Connection) -> (u64, u64) {
    let info: String = redis::cmd("INFO").arg("stats").query(raw).unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    };
    (
        field("tracking_total_keys:"),
        field("tracking_total_prefixes:"),
    )
}

/// `tracking = "broadcast"` registers the cache's prefix with Redis (no per-key table), and
/// `tracking = "keys"` the keys read (no prefix); either way a foreign write reaches the L1.
#[test]
fn the_tracking_option_chooses_how_redis_tracks() {
    let b = serve(&BCAST_URL);
    let k = serve(&KEYED_URL);
    for (server, name, call) in [
        (&b, "t_bcast", bcast as fn(u64) -> u64),
        (&k, "t_keyed", keyed),
    ] {
        let mut raw = server.raw();
        let _: () = raw.set(format!("{name}:1"), 10).unwrap();
        assert_eq!(call(1), 10);
        let (keys, prefixes) = tracking_stats(&mut raw);
        if name == "t_bcast" {
            assert_eq!((keys, prefixes), (0, 1), "broadcast: one prefix, no keys");
        } else {
            assert!(
                keys >= 1 && prefixes == 0,
                "keys: {keys} keys, {prefixes} prefixes"
            );
        }
        let _: () = raw.set(format!("{name}:1"), 11).unwrap();
        support::eventually(
            Duration::from_secs(5),
            "the foreign write to reach the L1",
            || call(1) == 11,
        );
    }
}

// ---- stats -------------------------------------------------------------------------------

static STATS_URL: OnceLock<String> = OnceLock::new();
static STATS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "t_stats", redis = STATS_URL.get())]
fn counted(n: u64) -> u64 {
    bump(&STATS_RUNS);
    n + 1
}

#[flipcache(name = "t_stats_async", redis = STATS_URL.get())]
async fn counted_async(n: u64) -> u64 {
    n + 2
}

/// `<fn>_stats()` is a plain call, for sync and async functions alike: zeros before the first
/// call builds the cache, then the counts.
#[test]
fn the_stats_companion_needs_no_fallible_or_async_call() {
    let _server = serve(&STATS_URL);
    let before: flipcache::Stats = counted_stats();
    assert_eq!(before, flipcache::Stats::default());
    assert_eq!(counted(1), 2);
    assert_eq!(counted(1), 2);
    assert_eq!(counted(1), 2);
    let s = counted_stats();
    assert_eq!(runs(&STATS_RUNS), 1);
    assert_eq!((s.loads, s.local_hits, s.sets), (1, 2, 1), "{s:?}");

    assert_eq!(counted_async_stats(), flipcache::Stats::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(counted_async(1).await, 3);
        assert_eq!(counted_async(1).await, 3);
    });
    let s = counted_async_stats();
    assert_eq!((s.loads, s.local_hits), (1, 1), "{s:?}");
}
