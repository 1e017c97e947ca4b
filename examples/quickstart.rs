//! The seed's quick start, line by line. Run with `./scripts/demo` (it starts a private Redis),
//! or point `FLIPCACHE_REDIS_URL` at a Redis you own: `cargo run --example quickstart`.

use flipcache::FlipCache;

fn main() -> flipcache::Result<()> {
    let cache: FlipCache<String, String> = FlipCache::new("my_cache")?;

    cache.set("my_key", "my_value")?;

    println!("{:?}", cache.get("my_key")?); // Some("my_value")
    println!("{:?}", cache.get("unknown")?); // None
    println!("{}", cache.contains("my_key")?); // true

    let nums: FlipCache<u64, u64> = FlipCache::new("nums")?;
    nums.set(123, 246)?;
    println!("{:?}", nums.get(&123)?); // Some(246)
    Ok(())
}
