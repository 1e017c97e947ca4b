//! Staying up when Redis or the source fails, against a real, private Redis: stale-while-
//! revalidate (`stale_for`), eager refresh, fail-safe across a Redis stop and across loader
//! errors (throttled), and no value from before an outage served after the reconnect.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flipcache::{FlipCache, flipcache};
use redis::Commands;
use support::{Server, eventually};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn a_stale_value_is_served_at_once_and_refreshed_once_in_the_background() {
    let server = Server::start();
    let cache = FlipCache::<String, String>::builder("rs_swr")
        .redis_url(&server.url())
        .expire_time(Duration::from_millis(300))
        .stale_for(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut raw = server.raw();
    assert_eq!(cache.get_with("k", || "v1".to_string()).unwrap(), "v1");
    // Written for expire_time + stale_for.
    let pttl: i64 = raw.pttl("rs_swr:k").unwrap();
    assert!(pttl > 5_000, "{pttl}");
    assert!(cache.get("k").unwrap().is_some(), "fresh at first");
    std::thread::sleep(Duration::from_millis(400));
    // Stale now: `get` reads it as absent, Python and redis-cli still read the value.
    assert_eq!(cache.get("k").unwrap(), None);
    let python: String = raw.get("rs_swr:k").unwrap();
    assert_eq!(python, "v1");
    // Loader paths serve it at once and refresh it once, in the background.
    let (started, finished) = (counter(), counter());
    let release = Arc::new(std::sync::Barrier::new(2));
    let mut served = Vec::new();
    for _ in 0..50 {
        let (s, f, r) = (started.clone(), finished.clone(), release.clone());
        served.push(
            cache
                .get_with("k", move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    r.wait();
                    f.fetch_add(1, Ordering::SeqCst);
                    "v2".to_string()
                })
                .unwrap(),
        );
    }
    assert!(served.iter().all(|v| v == "v1"), "{served:?}");
    eventually(Duration::from_secs(5), "the refresh started", || {
        started.load(Ordering::SeqCst) == 1
    });
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "served before the loader finished"
    );
    release.wait();
    eventually(Duration::from_secs(5), "the refreshed value", || {
        cache.get_with("k", || "v3".to_string()).unwrap() == "v2"
    });
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "one refresh for 50 stale hits"
    );
    let stored: String = raw.get("rs_swr:k").unwrap();
    assert_eq!(stored, "v2");
    let s = cache.stats();
    assert!(s.stale_served >= 50 && s.refreshes == 1, "{s:?}");
}

#[test]
fn a_stale_value_read_from_redis_is_served_and_refreshed_by_the_async_front() {
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = server.url();
    rt.block_on(async {
        let cache: flipcache::aio::FlipCache<u64, u64> = FlipCache::builder("rs_swr_async")
            .redis_url(&url)
            .local_max(0) // every read goes to Redis: freshness comes from PTTL alone
            .expire_time(Duration::from_millis(200))
            .stale_for(Duration::from_secs(5))
            .build_async()
            .await
            .unwrap();
        assert_eq!(cache.get_with(&1, async { 10 }).await.unwrap(), 10);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cache.get(&1).await.unwrap(), None, "stale reads as absent");
        assert_eq!(cache.get_with(&1, async { 11 }).await.unwrap(), 10);
        let mut now = 0;
        for _ in 0..500 {
            now = cache.get_with(&1, async { 12 }).await.unwrap();
            if now != 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            now, 11,
            "the background refresh stored the first loader's value"
        );
    });
}

#[test]
fn eager_refresh_replaces_a_hot_entry_before_it_goes_stale() {
    let server = Server::start();
    let cache = FlipCache::<u64, u64>::builder("rs_eager")
        .redis_url(&server.url())
        .expire_time(Duration::from_secs(1))
        .eager_refresh(0.5)
        .build()
        .unwrap();
    let loads = counter();
    let l = loads.clone();
    assert_eq!(
        cache
            .get_with(&1, move || {
                l.fetch_add(1, Ordering::SeqCst);
                1
            })
            .unwrap(),
        1
    );
    std::thread::sleep(Duration::from_millis(600));
    // Past half its life, still fresh: served as is, refreshed in the background.
    let l = loads.clone();
    assert_eq!(
        cache
            .get_with(&1, move || {
                l.fetch_add(1, Ordering::SeqCst);
                2
            })
            .unwrap(),
        1
    );
    eventually(Duration::from_secs(2), "the eager refresh", || {
        cache.get(&1).unwrap() == Some(2)
    });
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    // The new value has a whole life ahead: it was refreshed before the old one expired.
    let pttl: i64 = server.raw().pttl("rs_eager:1").unwrap();
    assert!(pttl > 500, "{pttl}");
}

#[test]
fn loader_failures_keep_the_stale_value_and_are_throttled() {
    let server = Server::start();
    let cache = FlipCache::<u64, u64>::builder("rs_throttle")
        .redis_url(&server.url())
        .expire_time(Duration::from_millis(100))
        .stale_for(Duration::from_secs(10))
        .fail_safe(true)
        .fail_safe_throttle(Duration::from_millis(500))
        .build()
        .unwrap();
    assert_eq!(cache.get_with(&1, || 7).unwrap(), 7);
    std::thread::sleep(Duration::from_millis(150));
    let calls = counter();
    let until = std::time::Instant::now() + Duration::from_millis(1_200);
    let mut served = 0;
    while std::time::Instant::now() < until {
        let c = calls.clone();
        let v = cache
            .try_get_with(&1, move || {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<u64, _>("the database is down")
            })
            .unwrap();
        assert_eq!(v, 7, "the stale value, not the error");
        served += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let n = calls.load(Ordering::SeqCst);
    assert!(served > 50, "{served}");
    // One attempt at first, then at most one per 500 ms.
    assert!(
        (2..=4).contains(&n),
        "loader calls bounded by the throttle: {n}"
    );
}

#[test]
fn fail_safe_keeps_hot_keys_up_through_a_redis_stop_then_errors() {
    let mut server = Server::start();
    let cache = FlipCache::<u64, u64>::builder("rs_outage")
        .redis_url(&server.url())
        .timeout(Duration::from_millis(200))
        .expire_time(Duration::from_millis(500))
        .stale_for(Duration::from_millis(1_500))
        .fail_safe(true)
        .build()
        .unwrap();
    cache.set(1, 100).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(100));
    server.stop();
    // Hot keys keep serving: `get` after a failed Redis call, loader paths at once. (Until the
    // outage is noticed, or the entry's TTL ends, a hit is a plain hit: the calls go on until
    // one is served by fail-safe, well before expire_time + stale_for.)
    support::eventually(
        Duration::from_millis(1_500),
        "a value served by fail-safe",
        || {
            assert_eq!(cache.get(&1).unwrap(), Some(100));
            assert_eq!(cache.get_with(&1, || 0).unwrap(), 100);
            cache.stats().fail_safe > 0
        },
    );
    // Past expire_time + stale_for, the value is gone: errors (or the loader, fail-open).
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(cache.get(&1).is_err());
}

/// Runs a writer in a fresh process (this test binary's `child_writer`).
fn write_in_child(url: &str, key: u64, value: u64) {
    support::run_child(
        "child_writer",
        &[
            ("RESILIENCE_CHILD_URL", url.to_owned()),
            ("RESILIENCE_CHILD_WRITE", format!("{key}={value}")),
        ],
        "RESILIENCE_CHILD wrote",
    );
}

/// The child side of `a_value_changed_while_disconnected_is_never_served_after_the_reconnect`:
/// run only by it, with `--ignored`; run any other way it fails.
#[test]
#[ignore = "a child process of a_value_changed_while_disconnected_is_never_served_after_the_reconnect"]
fn child_writer() {
    let url = std::env::var("RESILIENCE_CHILD_URL").expect("run only as a child process");
    let what = std::env::var("RESILIENCE_CHILD_WRITE").expect("run only as a child process");
    let (k, v) = what.split_once('=').expect("key=value");
    let cache: FlipCache<u64, u64> = FlipCache::builder("rs_reconnect")
        .redis_url(&url)
        .build()
        .unwrap();
    cache
        .set(k.parse::<u64>().unwrap(), v.parse::<u64>().unwrap())
        .unwrap();
    println!("RESILIENCE_CHILD wrote");
}

#[test]
fn a_value_changed_while_disconnected_is_never_served_after_the_reconnect() {
    let mut server = Server::start();
    let cache = FlipCache::<u64, u64>::builder("rs_reconnect")
        .redis_url(&server.url())
        .timeout(Duration::from_millis(200))
        .expire_time(Duration::from_secs(60))
        .stale_for(Duration::from_secs(60))
        .fail_safe(true)
        .build()
        .unwrap();
    cache.set(1, 1).unwrap();
    cache.set(2, 2).unwrap();
    assert_eq!(cache.get(&1).unwrap(), Some(1));
    server.stop();
    eventually(Duration::from_secs(5), "the outage is noticed", || {
        cache.get(&1).is_ok() && cache.stats().fail_safe > 0
    });
    server.restart();
    // Another process changes key 1 while we are not connected (the restarted server may
    // have kept the old keys or not: key 2 is whatever Redis says).
    write_in_child(&server.url(), 1, 111);
    let redis_2: Option<u64> = server.raw().get("rs_reconnect:2").unwrap();
    eventually(
        Duration::from_secs(5),
        "the reconnect revalidates key 1",
        || cache.get_with(&1, || 0).unwrap() == 111,
    );
    for _ in 0..20 {
        assert_eq!(cache.get_with(&1, || 0).unwrap(), 111);
        assert_eq!(cache.get(&1).unwrap(), Some(111));
        assert_eq!(cache.get(&2).unwrap(), redis_2);
    }
}

static MEMO_URL: OnceLock<String> = OnceLock::new();
static MEMO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "rs_memo", redis = MEMO_URL.get(), expire_time = Duration::from_millis(200), stale_for = 5)]
fn price(sku: u64) -> u64 {
    MEMO_RUNS.fetch_add(1, Ordering::SeqCst) as u64 * 1000 + sku
}

#[test]
fn memoized_functions_serve_stale_results_while_refreshing() {
    let server = Server::start();
    MEMO_URL.set(server.url()).unwrap();
    assert_eq!(price(7), 7);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(price(7), 7, "stale, served at once");
    eventually(Duration::from_secs(5), "the refreshed result", || {
        price(7) == 1007
    });
    assert_eq!(MEMO_RUNS.load(Ordering::SeqCst), 2);
}

static TAGGED_URL: OnceLock<String> = OnceLock::new();
static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[flipcache(name = "rs_memo_tagged", redis = TAGGED_URL.get(), expire_time = Duration::from_millis(200), stale_for = 5, tags = ["sku:{sku}"])]
fn tagged_price(sku: u64) -> u64 {
    TAGGED_RUNS.fetch_add(1, Ordering::SeqCst) as u64 * 1000 + sku
}

#[flipcache(name = "rs_memo_tagged_async", redis = TAGGED_URL.get(), expire_time = 60, eager_refresh = 0.1, tags = ["sku:{sku}"])]
async fn tagged_price_async(sku: u64) -> u64 {
    TAGGED_RUNS.fetch_add(1, Ordering::SeqCst) as u64 * 1000 + sku
}

/// `tags` with `stale_for` (and, async, `eager_refresh`): the background refresh stores its
/// result under the function's tags too. The first results are written by another client,
/// untagged, so only the refresh's write can list them under their tag.
#[test]
fn memoized_refreshes_store_their_results_under_the_tags() {
    let server = Server::start();
    TAGGED_URL.set(server.url()).unwrap();
    let mut raw = server.raw();
    let write = |raw: &mut redis::Connection, key: &str, value: &str, ttl_ms: u64| {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query(raw)
            .unwrap();
    };
    // Within the last 5 s of its life: stale.
    write(&mut raw, "rs_memo_tagged:7", "7", 4_000);
    assert_eq!(tagged_price(7), 7, "stale, served at once");
    eventually(Duration::from_secs(5), "the refreshed result", || {
        tagged_price(7) >= 1000
    });
    let cache = tagged_price_cache().unwrap();
    assert_eq!(
        cache.remove_by_tag("sku:7").unwrap(),
        1,
        "the refresh tagged it"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Past a tenth of its 60 s life: the L1 hit after the read refreshes it eagerly (and it
        // does not expire meanwhile, so no miss can store it instead).
        write(&mut raw, "rs_memo_tagged_async:8", "8", 30_000);
        assert_eq!(tagged_price_async(8).await, 8);
        let cache = tagged_price_async_cache().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tagged_price_async(8).await < 1000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the eager refresh never landed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            cache.remove_by_tag("sku:8").await.unwrap(),
            1,
            "the refresh tagged it"
        );
    });
}

#[test]
fn a_soft_timeout_gives_the_stale_value_and_the_load_goes_on() {
    let server = Server::start();
    let cache = FlipCache::<u64, u64>::builder("rs_soft")
        .redis_url(&server.url())
        .expire_time(Duration::from_millis(100))
        .stale_for(Duration::from_secs(10))
        .load_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(cache.get_with(&1, || 1).unwrap(), 1);
    std::thread::sleep(Duration::from_millis(150));
    // A quick refresh lands within the soft timeout: the caller gets the new value.
    assert_eq!(cache.get_with(&1, || 2).unwrap(), 2);
    std::thread::sleep(Duration::from_millis(150));
    // A slow one does not: the stale value, long before the loader finishes.
    let finished = counter();
    let f = finished.clone();
    assert_eq!(
        cache
            .get_with(&1, move || {
                std::thread::sleep(Duration::from_secs(2));
                f.fetch_add(1, Ordering::SeqCst);
                3
            })
            .unwrap(),
        2
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    // Its result is stored when it finishes.
    eventually(Duration::from_secs(5), "the slow refresh is stored", || {
        cache.get(&1).unwrap() == Some(3)
    });
}

#[test]
fn a_hard_timeout_stops_the_wait_but_not_the_load() {
    let server = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = FlipCache::<u64, u64>::builder("rs_hard")
        .redis_url(&server.url())
        .load_hard_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = cache
        .get_with(&1, || {
            std::thread::sleep(Duration::from_millis(800));
            11
        })
        .unwrap_err();
    assert!(err.is_load_timeout(), "{err}");
    assert_eq!(err.key(), Some("rs_hard:1"));
    eventually(
        Duration::from_secs(5),
        "the blocking load is stored",
        || cache.get(&1).unwrap() == Some(11),
    );
    let aio = cache.to_async();
    let err = rt
        .block_on(aio.get_with(&2, async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            22
        }))
        .unwrap_err();
    assert!(err.is_load_timeout(), "{err}");
    eventually(Duration::from_secs(5), "the async load is stored", || {
        cache.get(&2).unwrap() == Some(22)
    });
    // A quick loader is not affected.
    assert_eq!(cache.get_with(&4, || 44).unwrap(), 44);
    // A panicking loader still panics in its caller (given the time to print its backtrace).
    let patient = FlipCache::<u64, u64>::builder("rs_hard")
        .redis_url(&server.url())
        .load_hard_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        patient.get_with(&3, || -> u64 { panic!("boom") })
    }));
    assert!(panicked.is_err(), "{panicked:?}");
}
