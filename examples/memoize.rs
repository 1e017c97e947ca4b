//! Memoizing a slow function: the first call runs it, the second is served from the cache.
//! `FLIPCACHE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example memoize`
//! (or `./scripts/demo`, which starts a private Redis).

use std::time::{Duration, Instant};

use flipcache::{et, flipcache};

/// A slow lookup: 200 ms per call.
#[flipcache(name = "example_slow_square", expire_time = et::ONE_MINUTE, local_max = 1_000)]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    n * n
}

fn main() -> flipcache::Result<()> {
    // Start from a clean slate, so the first call below really runs the body.
    slow_square_invalidate(12)?;

    let t = Instant::now();
    let first = slow_square(12);
    println!("first call:  {first} in {:?} (ran the body)", t.elapsed());

    let t = Instant::now();
    let second = slow_square(12);
    println!(
        "second call: {second} in {:?} (from the local cache)",
        t.elapsed()
    );

    // The cache, typed by the arguments: another process would find the result in Redis
    // under `example_slow_square:12`.
    let cache = slow_square_cache()?;
    println!(
        "Redis key {} holds {:?}",
        cache.redis_key(&12),
        cache.get(&12)?
    );

    let t = Instant::now();
    let fresh = slow_square_uncached(12);
    println!(
        "uncached:    {fresh} in {:?} (never touches the cache)",
        t.elapsed()
    );
    Ok(())
}
