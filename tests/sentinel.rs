//! Redis Sentinel: the cache finds the primary through a Sentinel, and after a failover it
//! reconnects to the new primary and empties its L1; a memoized function finds its primary
//! through a Sentinel too. Runs primaries, a replica and Sentinels, all private, on free ports.

mod support;

use std::time::Duration;

use flipcache::FlipCache;
use redis::Commands;
use support::{Server, eventually};

fn sentinel_master(sentinel: &Server) -> Option<u16> {
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query(&mut sentinel.raw())
        .ok()?;
    addr.map(|(_, port)| port)
}

#[test]
fn a_failover_moves_the_cache_to_the_new_primary() {
    let primary = Server::start();
    let replica = Server::start_with(&[
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.port().to_string(),
    ]);
    eventually(Duration::from_secs(10), "the replica to sync", || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.raw())
            .unwrap();
        info.contains("master_link_status:up")
    });
    let dir = std::env::temp_dir().join(format!("flipcache-sentinel-{}", primary.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds mymaster 1000\n\
             sentinel failover-timeout mymaster 5000\n",
            primary.port()
        ),
    )
    .unwrap();
    let sentinel = Server::start_with(&[conf.display().to_string(), "--sentinel".into()]);
    eventually(
        Duration::from_secs(15),
        "the Sentinel to see the replica",
        || {
            let replicas: redis::Value = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg("mymaster")
                .query(&mut sentinel.raw())
                .unwrap_or(redis::Value::Nil);
            matches!(replicas, redis::Value::Array(ref r) if !r.is_empty())
        },
    );
    assert_eq!(sentinel_master(&sentinel), Some(primary.port()));

    let cache: FlipCache<String, String> = FlipCache::builder("sent")
        .tracking(support::tracking())
        .timeout(Duration::from_millis(500))
        .redis_sentinel(&[&sentinel.url()], "mymaster")
        .build()
        .unwrap();
    cache.set("k", "v1").unwrap();
    assert!(cache.local_contains("k"));
    let v: Option<String> = primary.raw().get("sent:k").unwrap();
    assert_eq!(
        v.as_deref(),
        Some("v1"),
        "the write went to the primary the Sentinel named"
    );
    let flushes = cache.stats().flushes;

    // The Sentinel may not judge the replica promotable until it has polled it (NOGOODSLAVE).
    eventually(
        Duration::from_secs(30),
        "the Sentinel to accept the failover",
        || {
            let r: redis::RedisResult<()> = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("mymaster")
                .query(&mut sentinel.raw());
            if r.is_err() {
                std::thread::sleep(Duration::from_millis(200));
            }
            r.is_ok()
        },
    );
    eventually(Duration::from_secs(20), "the failover", || {
        sentinel_master(&sentinel) == Some(replica.port())
    });
    eventually(
        Duration::from_secs(20),
        "the old primary to be demoted",
        || {
            // While it resyncs from the new primary it may answer LOADING, or drop the
            // connection as its role changes: not yet.
            let Ok(mut conn) = primary.client().get_connection() else {
                return false;
            };
            let info: redis::RedisResult<String> =
                redis::cmd("INFO").arg("replication").query(&mut conn);
            info.is_ok_and(|info| info.contains("role:slave"))
        },
    );

    // The first write may meet the demoted server (READONLY); the cache then reconnects.
    eventually(
        Duration::from_secs(10),
        "a write to succeed on the new primary",
        || cache.set("k", "v2").is_ok(),
    );
    assert!(
        cache.stats().flushes > flushes,
        "the L1 was emptied on the way"
    );
    let v: Option<String> = replica.raw().get("sent:k").unwrap();
    assert_eq!(
        v.as_deref(),
        Some("v2"),
        "the write went to the new primary"
    );
    assert_eq!(cache.get("k").unwrap().as_deref(), Some("v2"));
    // Coherence works on the new primary too.
    support::read_until_held(&cache, "k", "v2");
    let before = cache.stats().invalidations;
    let _: () = replica.raw().set("sent:k", "v3").unwrap();
    eventually(
        Duration::from_secs(5),
        "a push from the new primary",
        || cache.stats().invalidations > before,
    );
    assert_eq!(cache.get("k").unwrap().as_deref(), Some("v3"));
    let _ = std::fs::remove_dir_all(dir);
}

static MEMO_SENTINEL_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static MEMO_SENTINEL_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[flipcache::flipcache(
    name = "t_sentinel",
    redis = flipcache::SentinelService::new(MEMO_SENTINEL_URL.get(), "memomaster"),
    timeout_ms = 2000
)]
fn doubled(n: u64) -> u64 {
    MEMO_SENTINEL_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    n * 2
}

/// A memoized function reaches its Redis through Sentinel (`SentinelService`): the result is
/// stored on the primary the Sentinel names.
#[test]
fn a_memoized_function_finds_its_primary_through_sentinel() {
    let primary = Server::start();
    let dir = std::env::temp_dir().join(format!("flipcache-memo-sentinel-{}", primary.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor memomaster 127.0.0.1 {} 1\n",
            primary.port()
        ),
    )
    .unwrap();
    let sentinel = Server::start_with(&[conf.display().to_string(), "--sentinel".into()]);
    eventually(
        Duration::from_secs(10),
        "the Sentinel to name the primary",
        || {
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg("memomaster")
                .query(&mut sentinel.raw())
                .ok()
                .flatten();
            addr.is_some_and(|(_, port)| port == primary.port())
        },
    );
    MEMO_SENTINEL_URL.set(sentinel.url()).unwrap();
    assert_eq!(doubled(21), 42);
    let mut raw = primary.raw();
    eventually(Duration::from_secs(5), "the result on the primary", || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("t_sentinel:*")
            .query(&mut raw)
            .unwrap();
        keys.len() == 1
    });
    let runs = MEMO_SENTINEL_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(doubled(21), 42);
    assert_eq!(
        MEMO_SENTINEL_RUNS.load(std::sync::atomic::Ordering::SeqCst),
        runs,
        "served from the cache"
    );
}
