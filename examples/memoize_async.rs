//! Memoizing an async function: 100 concurrent tasks ask for the same slow value and the body
//! runs once (single-flight); later calls are served from the local cache.
//! `FLIPCACHE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example memoize_async`
//! (or `./scripts/demo`, which starts a private Redis).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flipcache::{et, flipcache};

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A slow remote lookup: 200 ms per call. `None` (no such user) is never cached.
#[flipcache(name = "example_user_name", expire_time = et::FIVE_MINUTES)]
async fn user_name(id: u64) -> Option<String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    (id != 0).then(|| format!("user-{id}"))
}

#[tokio::main]
async fn main() -> flipcache::Result<()> {
    // Start from a clean slate, so the first calls below really run the body.
    user_name_invalidate(42).await?;

    let t = Instant::now();
    let tasks: Vec<_> = (0..100).map(|_| tokio::spawn(user_name(42))).collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").as_deref(), Some("user-42"));
    }
    println!(
        "100 concurrent calls in {:?}: the body ran {} time(s)",
        t.elapsed(),
        RUNS.load(Ordering::SeqCst)
    );

    let t = Instant::now();
    let again = user_name(42).await;
    println!(
        "next call: {again:?} in {:?} (from the local cache)",
        t.elapsed()
    );

    let t = Instant::now();
    let missing = user_name(0).await;
    println!(
        "unknown user: {missing:?} in {:?} (None is not cached)",
        t.elapsed()
    );

    let cache = user_name_cache().await?;
    println!(
        "Redis key {} holds {:?}",
        cache.redis_key(&42),
        cache.get(&42).await?
    );
    Ok(())
}
