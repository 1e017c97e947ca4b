//! Tags against a real, private Redis: tag, remove, and check through a raw connection and
//! from a second process (whose L1 held the entries); concurrent tagging and removal with
//! concurrent removers (no pre-removal value survives, no surviving value is unlisted); the
//! index stays bounded over 10,000 writes with TTLs and expires with them; loaders and
//! memoized functions tag what they return. The 3-primary cluster case is in `cluster.rs`.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flipcache::{FlipCache, Loaded, flipcache};
use redis::Commands;
use support::{Server, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn strings(server: &Server, name: &str) -> FlipCache<String, String> {
    FlipCache::builder(name)
        .redis_url(&server.url())
        .build()
        .expect("build")
}

fn index(name: &str, tag: &str) -> String {
    format!("__flipcache__:tag:{name}:{tag}")
}

#[test]
fn removing_a_tag_deletes_its_entries_in_redis_and_nothing_else() {
    let server = Server::start();
    let cache = strings(&server, "tg_basic");
    cache
        .set_with_tags("profile:42", "p42", ["user:42"])
        .unwrap();
    cache
        .set_with_tags("orders:42", "o42", ["user:42", "org:7"])
        .unwrap();
    cache
        .set_with_tags("profile:43", "p43", ["user:43", "org:7"])
        .unwrap();
    cache.set("plain", "x").unwrap();
    let mut raw = server.raw();
    // The indexes live outside the layout: never counted, listed or cleared as entries.
    assert_eq!(
        raw.zcard::<_, usize>(index("tg_basic", "user:42")).unwrap(),
        2
    );
    assert_eq!(
        raw.zcard::<_, usize>(index("tg_basic", "org:7")).unwrap(),
        2
    );
    assert_eq!(cache.len().unwrap(), 4);
    let mut keys = cache.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["orders:42", "plain", "profile:42", "profile:43"]);

    assert_eq!(cache.remove_by_tag("user:42").unwrap(), 2);
    assert_eq!(cache.get("profile:42").unwrap(), None);
    assert_eq!(cache.get("orders:42").unwrap(), None);
    assert_eq!(cache.get("profile:43").unwrap().as_deref(), Some("p43"));
    assert_eq!(cache.get("plain").unwrap().as_deref(), Some("x"));
    let gone: usize = raw
        .exists(&["tg_basic:profile:42", "tg_basic:orders:42"])
        .unwrap();
    assert_eq!(gone, 0);
    let index_left: bool = raw.exists(index("tg_basic", "user:42")).unwrap();
    assert!(!index_left, "a removed tag's index is emptied");
    // The other tag still lists its dead member; removing it counts only what existed.
    assert_eq!(cache.remove_by_tag("org:7").unwrap(), 1);
    assert_eq!(cache.remove_by_tag("org:7").unwrap(), 0);
    assert_eq!(cache.remove_by_tag("never used").unwrap(), 0);
    assert_eq!(cache.keys().unwrap(), ["plain"]);
}

#[test]
fn clear_leaves_other_caches_indexes_alone_and_tags_survive_an_untagged_rewrite() {
    let server = Server::start();
    let a = strings(&server, "tg_clear_a");
    let b = strings(&server, "tg_clear_b");
    a.set_with_tags("k", "v", ["t"]).unwrap();
    b.set_with_tags("k", "v", ["t"]).unwrap();
    assert_eq!(a.clear().unwrap(), 1);
    assert_eq!(b.remove_by_tag("t").unwrap(), 1);
    // An untagged rewrite of a tagged key is still listed: removal takes it (a cache may
    // always drop an entry).
    a.set_with_tags("k", "v1", ["t"]).unwrap();
    a.set("k", "v2").unwrap();
    assert_eq!(a.remove_by_tag("t").unwrap(), 1);
    assert_eq!(a.get("k").unwrap(), None);
}

#[test]
fn the_async_front_tags_and_removes() {
    let server = Server::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache: flipcache::aio::FlipCache<u64, String> =
            flipcache::aio::FlipCache::builder("tg_async")
                .redis_url(&server.url())
                .build_async()
                .await
                .unwrap();
        for i in 0..10u64 {
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            cache
                .set_with_tags(i, format!("v{i}"), [tag, "all"])
                .await
                .unwrap();
        }
        assert_eq!(cache.remove_by_tag("even").await.unwrap(), 5);
        assert_eq!(cache.get(&2).await.unwrap(), None);
        assert_eq!(cache.get(&3).await.unwrap().as_deref(), Some("v3"));
        assert_eq!(cache.remove_by_tag("all").await.unwrap(), 5);
        assert_eq!(cache.len().await.unwrap(), 0);
    });
}

#[test]
fn loaders_tag_what_they_return() {
    let server = Server::start();
    let cache = strings(&server, "tg_loader");
    let v = cache
        .get_with("profile:1", || {
            Loaded::new("loaded".to_string())
                .ttl(Duration::from_secs(60))
                .tags(["user:1"])
        })
        .unwrap();
    assert_eq!(v, "loaded");
    let ttl = cache.ttl("profile:1").unwrap().expect("a TTL");
    assert!(ttl > Duration::from_secs(50));
    let mut raw = server.raw();
    let score: Option<f64> = raw
        .zscore(index("tg_loader", "user:1"), "tg_loader:profile:1")
        .unwrap();
    assert!(score.is_some_and(|s| s > 0.0), "listed with its expiry");
    assert_eq!(cache.remove_by_tag("user:1").unwrap(), 1);
    // Removed from this process's L1 too: the loader runs again.
    let again = cache
        .get_with("profile:1", || Loaded::new("again".to_string()))
        .unwrap();
    assert_eq!(again, "again");
}

// ---- a second process ------------------------------------------------------------------------

/// Runs the child (`tags_child`): it reads `keys` (filling its L1), says `ready`, and after
/// `go` waits until every read misses, then says `gone`.
#[test]
fn a_removal_reaches_another_process_and_a_raw_connection() {
    let server = Server::start();
    let cache = strings(&server, "tg_child");
    let keys: Vec<String> = (0..50).map(|i| format!("item:{i}")).collect();
    for k in &keys {
        cache
            .set_with_tags(k.as_str(), format!("v-{k}"), ["batch"])
            .unwrap();
    }
    cache.set("untagged", "stays").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tags_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TAGS_CHILD_URL", server.url())
        .env("TAGS_CHILD_KEYS", keys.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let said = |out: &mut BufReader<_>, line: &mut String, what: &str| loop {
        line.clear();
        let n = out.read_line(line).unwrap();
        assert!(n > 0, "the child ended before saying {what}");
        if line.contains(what) {
            return;
        }
    };
    said(&mut out, &mut line, "TAGS_CHILD ready");

    assert_eq!(cache.remove_by_tag("batch").unwrap(), 50);
    // A raw connection sees the keys gone as soon as the call returns (as does Python).
    let mut raw = server.raw();
    let left: usize = raw.exists(&keys).unwrap();
    assert_eq!(left, 0);
    assert_eq!(raw.get::<_, String>("tg_child:untagged").unwrap(), "stays");

    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    said(&mut out, &mut line, "TAGS_CHILD gone");
    assert!(child.wait().unwrap().success());
}

/// The child side of `a_removal_reaches_another_process_and_a_raw_connection`: run only by it,
/// with `--ignored`; run any other way it fails.
#[test]
#[ignore = "a child process of a_removal_reaches_another_process_and_a_raw_connection"]
fn tags_child() {
    let url = std::env::var("TAGS_CHILD_URL").expect("run only as a child process");
    let keys = std::env::var("TAGS_CHILD_KEYS").expect("run only as a child process");
    let keys: Vec<&str> = keys.split(',').collect();
    let cache: FlipCache<String, String> = FlipCache::builder("tg_child")
        .redis_url(&url)
        .build()
        .unwrap();
    for k in &keys {
        assert_eq!(cache.get(*k).unwrap(), Some(format!("v-{k}")));
        assert!(cache.local_contains(*k), "held in the child's L1");
    }
    println!("TAGS_CHILD ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    // The invalidations arrive within about a round trip; then every read misses.
    eventually(WAIT, "the child's L1 drops the removed entries", || {
        keys.iter().all(|k| !cache.local_contains(*k))
    });
    for k in &keys {
        assert_eq!(cache.get(*k).unwrap(), None);
    }
    assert_eq!(cache.get("untagged").unwrap().as_deref(), Some("stays"));
    println!("TAGS_CHILD gone");
}

// ---- concurrency -----------------------------------------------------------------------------

/// Writers tag entries while two removers at a time remove the tag. After each removal
/// returns, no key may hold a value whose write returned before that removal started; once
/// all is quiet, every key holding a value is listed in the index.
#[test]
fn concurrent_tagging_and_removal_leave_no_survivor() {
    let server = Server::start();
    let name = "tg_race";
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    let rkeys: Vec<String> = keys.iter().map(|k| format!("{name}:{k}")).collect();
    // Value → when its write was known to have returned.
    let returned: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let cache = strings(&server, name);
            let keys = keys.clone();
            let returned = returned.clone();
            let stop = stop.clone();
            let writes = writes.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut x = w as u64 + 1;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = &keys[(x % keys.len() as u64) as usize];
                    let v = format!("w{w}-{n}");
                    n += 1;
                    cache.set_with_tags(k.as_str(), v.as_str(), ["t"]).unwrap();
                    returned.lock().unwrap().insert(v, Instant::now());
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let removers: Vec<FlipCache<String, String>> = (0..2).map(|_| strings(&server, name)).collect();
    let mut raw = server.raw();
    let mut removed = 0;
    for round in 0..30 {
        let started = Instant::now();
        let counts: Vec<usize> = std::thread::scope(|s| {
            let runs: Vec<_> = removers
                .iter()
                .map(|r| s.spawn(move || r.remove_by_tag("t").unwrap()))
                .collect();
            runs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        removed += counts.iter().sum::<usize>();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&rkeys).query(&mut raw).unwrap();
        let returned = returned.lock().unwrap();
        for (k, v) in rkeys.iter().zip(values) {
            let Some(v) = v else { continue };
            if let Some(at) = returned.get(&v) {
                assert!(
                    *at >= started,
                    "round {round}: {k} = {v} was written before the removal started and survived it"
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(writes.load(Ordering::Relaxed) > 100, "the writers ran");
    assert!(removed > 0, "the removals removed");
    // Quiet now: every value standing is listed (unclaimed), so one more removal takes all.
    for k in &rkeys {
        if raw.exists::<_, bool>(k).unwrap() {
            let score: Option<f64> = raw.zscore(index(name, "t"), k).unwrap();
            assert!(
                score.is_some_and(|s| s >= 0.0),
                "{k} holds a value but is not listed: {score:?}"
            );
        }
    }
    removers[0].remove_by_tag("t").unwrap();
    let left: usize = raw.exists(&rkeys).unwrap();
    assert_eq!(left, 0);
}

// ---- the index's size --------------------------------------------------------------------------

#[test]
fn the_index_stays_bounded_over_10_000_writes_with_ttls_and_expires_with_them() {
    let server = Server::start();
    let name = "tg_bounded";
    let ttl = Duration::from_millis(100);
    let cache: FlipCache<u64, u64> = FlipCache::builder(name)
        .redis_url(&server.url())
        .expire_time(ttl)
        .build()
        .unwrap();
    let mut raw = server.raw();
    let idx = index(name, "t");
    // Entries are listed for their TTL plus the index's 2 s grace; allow 1 s more.
    let window = ttl + Duration::from_secs(3);
    let mut written: Vec<Instant> = Vec::with_capacity(10_000);
    let mut largest = 0;
    for round in 0..20u64 {
        for i in 0..500u64 {
            cache.set_with_tags(round * 500 + i, i, ["t"]).unwrap();
            written.push(Instant::now());
        }
        let size: usize = raw.zcard(&idx).unwrap();
        let now = Instant::now();
        let recent = written.iter().filter(|t| now - **t < window).count();
        assert!(
            size <= recent,
            "round {round}: the index lists {size} members, more than the {recent} written in the last {window:?}"
        );
        largest = largest.max(size);
        // Pace the writes over several grace periods, so most members die along the way.
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        largest < 10_000,
        "dead members were trimmed (largest {largest})"
    );
    let pttl: i64 = raw.pttl(&idx).unwrap();
    assert!(
        pttl > 0 && pttl <= 2_000 + 100 + 50,
        "the index expires with its last member: {pttl} ms"
    );
    eventually(WAIT, "the index expires once its members have", || {
        !raw.exists::<_, bool>(&idx).unwrap()
    });
}

// ---- memoized functions -------------------------------------------------------------------------

static MEMO_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(
    name = "tg_memo_profile",
    redis = MEMO_URL.get().cloned(),
    tags = ["user:{user}", "org:{org}"]
)]
fn profile(user: u64, org: &str) -> String {
    PROFILE_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{user}@{org}")
}

#[test]
fn memoized_functions_tag_their_results_from_their_arguments() {
    let server = Server::start();
    MEMO_URL.set(server.url()).unwrap();
    assert_eq!(profile(1, "acme"), "1@acme");
    assert_eq!(profile(2, "acme"), "2@acme");
    assert_eq!(profile(3, "other"), "3@other");
    assert_eq!(profile(1, "acme"), "1@acme");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 3);
    let cache = profile_cache().unwrap();
    assert_eq!(cache.remove_by_tag("org:acme").unwrap(), 2);
    assert_eq!(profile(1, "acme"), "1@acme");
    assert_eq!(profile(3, "other"), "3@other");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 4);
    assert_eq!(cache.remove_by_tag("user:3").unwrap(), 1);
    assert_eq!(cache.remove_by_tag("user:1").unwrap(), 1);
    assert_eq!(cache.len().unwrap(), 0);
}
