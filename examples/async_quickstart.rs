//! The seed's quick start and JSON snippets with the async front.

use flipcache::aio::FlipCache;
use flipcache::et;

#[tokio::main]
async fn main() -> flipcache::Result<()> {
    let cache: FlipCache<String, String> = FlipCache::new("my_cache").await?;
    cache.set("my_key", "my_value").await?;
    println!("{:?}", cache.get("my_key").await?); // Some("my_value")
    println!("{:?}", cache.get("unknown").await?); // None
    println!("{}", cache.contains("my_key").await?); // true

    let user_data = FlipCache::<String, serde_json::Value>::builder("user_data")
        .local_max(100)
        .expire_time(et::THREE_DAYS)
        .json()
        .build()
        .await?;
    let mut data = serde_json::json!({
        "state": 1,
        "orders": [1, 2, 3, 4],
        "items": {"foo": 1, "bar": true, "baz": []}
    });
    user_data.set("some-uuid", data.clone()).await?;
    println!("{}", user_data.get("some-uuid").await?.unwrap_or_default());
    data["state"] = 2.into();
    data["items"]["bar"] = false.into();
    user_data.set("some-uuid", data).await?;
    println!("{}", user_data.get("some-uuid").await?.unwrap_or_default());
    user_data.delete("some-uuid").await?;
    println!("{:?}", user_data.get("some-uuid").await?); // None

    // Many tasks share one pipelined connection.
    let nums: FlipCache<u64, u64> = FlipCache::new("nums").await?;
    nums.set_many((0..100u64).map(|i| (i, i * 2))).await?;
    let tasks: Vec<_> = (0..100u64)
        .map(|i| {
            let nums = nums.clone();
            tokio::spawn(async move { nums.get(&i).await })
        })
        .collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await.expect("task").map(Option::unwrap_or_default)?;
    }
    println!("sum of 100 values read by 100 tasks: {sum}"); // 9900
    Ok(())
}
