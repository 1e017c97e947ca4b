//! The async front against a real, private Redis: every verb, 1,000 concurrent tasks,
//! cancellation, both fronts side by side, and Redis going away.

mod support;

use std::time::Duration;

use flipcache::aio::FlipCache;
use redis::Commands;
use support::Server;

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb() {
    let server = Server::start();
    let c = server.cache_async::<u64, u64>("averbs").await;
    assert_send(c.get(&1)).await.unwrap();
    assert_send(c.set(1, 10)).await.unwrap();
    assert_eq!(c.get(&1).await.unwrap(), Some(10));
    assert!(c.contains(&1).await.unwrap());
    assert!(c.refresh(&1).await.unwrap());
    c.set_many([(2, 20), (3, 30)]).await.unwrap();
    assert_eq!(
        c.get_many(&[3, 4, 2]).await.unwrap(),
        vec![Some(30), None, Some(20)]
    );
    assert_eq!(c.len().await.unwrap(), 3);
    let mut keys = c.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, [1, 2, 3]);
    assert!(c.delete(&1).await.unwrap());
    assert_eq!(c.get(&1).await.unwrap(), None);
    assert_eq!(c.local_len(), 2);
    assert_eq!(c.clear().await.unwrap(), 2);
    assert!(c.local_keys().is_empty());
    assert!(c.is_empty().await.unwrap());
    let s: FlipCache<String, String> = flipcache::FlipCache::builder("astr")
        .tracking(support::tracking())
        .redis_url(&server.url())
        .build_async()
        .await
        .unwrap();
    s.set("k", "v").await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_on_overlapping_keys_leave_l1_and_redis_agreeing() {
    let server = Server::start();
    let c = server.cache_async::<u64, u64>("atasks").await;
    let mut raw = server.raw();
    // Overlapping writes fill nothing, and the pushes of the last ones may drop what the storm
    // left: a round can end with an empty L1, which checks nothing. Storms are run until one
    // leaves entries to compare.
    let mut compared = 0;
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for t in 0..1000u64 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20u64 {
                    let k = (t * 7 + i * 13 + round) % 32;
                    match (t + i) % 4 {
                        0 => {
                            c.delete(&k).await.unwrap();
                        }
                        1 => c.set(k, round * 1_000_000 + t * 100 + i).await.unwrap(),
                        _ => {
                            c.get(&k).await.unwrap();
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for k in c.local_keys() {
            let l = c.get(&k).await.unwrap();
            let r: Option<u64> = raw.get(format!("atasks:{k}")).unwrap();
            assert_eq!(l, r, "round {round}, key {k}");
            compared += 1;
        }
        if compared > 0 {
            break;
        }
    }
    assert!(compared > 0, "no storm left anything in the L1 to compare");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_the_cache_consistent() {
    let server = Server::start();
    let c = server.cache_async::<u64, u64>("acancel").await;
    for k in 0..20 {
        c.set(k, 1).await.unwrap();
    }
    // Make Redis slow, then cancel writes and reads half-way.
    let url = server.url();
    let sleeper = std::thread::spawn(move || {
        let mut raw = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.3)
            .query(&mut raw)
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut cancelled = 0;
    for k in 0..20u64 {
        if tokio::time::timeout(Duration::from_millis(5), c.set(k, 2))
            .await
            .is_err()
        {
            cancelled += 1;
        }
        let _ = tokio::time::timeout(Duration::from_millis(1), c.get(&(k + 100))).await;
    }
    sleeper.join().unwrap();
    assert!(
        cancelled > 0,
        "the writes should have been cancelled mid-flight"
    );
    // Whatever Redis ended up with, the L1 must not disagree with it.
    let mut raw = server.raw();
    for k in c.local_keys() {
        let r: Option<u64> = raw.get(format!("acancel:{k}")).unwrap();
        assert_eq!(c.get(&k).await.unwrap(), r, "key {k}");
    }
    // And nothing is stuck: a new write of every key fills the L1 again, once the echoes of
    // the cancelled writes (which Redis ran after all) are in: a write sent while one is on
    // its way may take it for its own and lose its entry to its own echo (never a stale one).
    // A blocking handle of the cache shares its tracked connection.
    let blocking: flipcache::FlipCache<String, u64> = server.cache("acancel");
    tokio::task::block_in_place(|| support::drain_pushes(&blocking, &mut raw, "sentinel"));
    for k in 0..20u64 {
        c.set(k, 3).await.unwrap();
    }
    assert_eq!(c.local_len(), 20);
    assert_eq!(c.get(&7).await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_async_handles_of_one_name_see_each_other() {
    let server = Server::start();
    let a = server.cache_async::<u64, u64>("both").await;
    let url = server.url();
    let b = tokio::task::spawn_blocking(move || {
        flipcache::FlipCache::<u64, u64>::builder("both")
            .tracking(support::tracking())
            .redis_url(&url)
            .build()
            .unwrap()
    })
    .await
    .unwrap();
    a.set(1, 1).await.unwrap();
    let b2 = b.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || b2.get(&1).unwrap())
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(a.get(&1).await.unwrap(), Some(1)); // both L1s hold 1 now
    let b2 = b.clone();
    tokio::task::spawn_blocking(move || b2.set(1, 2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.get(&1).await.unwrap(),
        Some(2),
        "the async handle must drop what the blocking one overwrote"
    );
    a.delete(&1).await.unwrap();
    let b2 = b.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || b2.get(&1).unwrap())
            .await
            .unwrap(),
        None
    );
    // And the same cache reached through to_async / to_blocking shares one L1. (A write
    // fills only if no push of a key sharing its coherence slot lands meanwhile: the pushes of
    // the writes of key 1 above may still be on their way, so it is tried a few times.)
    let same = b.to_async();
    let mut filled = false;
    for _ in 0..20 {
        same.set(5, 5).await.unwrap();
        filled = b.local_keys().contains(&5);
        if filled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        filled,
        "a write through to_async never filled the blocking handle's L1"
    );
    assert_eq!(same.get(&5).await.unwrap(), Some(5));
    assert_eq!(b.stats().local_hits, same.stats().local_hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_the_connection() {
    let server = Server::start();
    let c: FlipCache<u64, u64> = flipcache::FlipCache::builder("apipe")
        .tracking(support::tracking())
        .local_max(0)
        .redis_url(&server.url())
        .build_async()
        .await
        .unwrap();
    c.set_many((0..256u64).map(|i| (i, i))).await.unwrap();
    let before: u64 = client_count(&server);
    let tasks: Vec<_> = (0..256u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.get(&i).await.unwrap() })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), Some(i as u64));
    }
    assert_eq!(
        client_count(&server),
        before,
        "no extra connections were opened"
    );
}

fn client_count(server: &Server) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut server.raw())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_and_returning() {
    let mut server = Server::start();
    let c: FlipCache<u64, u64> = flipcache::FlipCache::builder("aoutage")
        .tracking(support::tracking())
        .timeout(Duration::from_millis(500))
        .redis_url(&server.url())
        .build_async()
        .await
        .unwrap();
    c.set(1, 1).await.unwrap();
    server.stop();
    let err = c.set(2, 2).await.unwrap_err();
    assert!(err.is_remote(), "{err}");
    assert_eq!(err.key(), Some("aoutage:2"));
    assert!(c.get(&3).await.is_err());
    assert_eq!(c.local_len(), 0, "a lost connection empties the L1");
    server.restart();
    // Reconnects back off while Redis is down: calls fail fast until an attempt succeeds.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let back = loop {
        match c.get(&1).await {
            Ok(v) => break v,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "never reconnected: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(back, None, "the restarted server is empty");
    c.set(1, 5).await.unwrap();
    assert_eq!(c.get(&1).await.unwrap(), Some(5));
}
