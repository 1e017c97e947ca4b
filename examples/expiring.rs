//! The seed's expiring example. Unlike the Python original, the L1 can stay on: every local
//! entry carries its Redis TTL, so it is never served past its expiry.

use std::time::Duration;

use flipcache::FlipCache;

fn main() -> flipcache::Result<()> {
    let expiring_cache = FlipCache::<String, String>::builder("expiring")
        .local_max(100) // the Python original needed 0 here to expire precisely
        .expire_time(Duration::from_secs(5))
        .build()?;

    expiring_cache.set("data", "This will expire")?;
    println!("{:?}", expiring_cache.get("data")?); // Some("This will expire")

    std::thread::sleep(Duration::from_secs(6));
    println!("{:?}", expiring_cache.get("data")?); // None
    Ok(())
}
