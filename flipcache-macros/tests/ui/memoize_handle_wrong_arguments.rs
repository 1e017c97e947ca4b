use flipcache::flipcache;

#[flipcache]
fn greet(name: &str, times: u32) -> String {
    format!("hi {name}").repeat(times as usize)
}

fn main() -> flipcache::Result<()> {
    let cache = greet_cache()?;
    // The handle takes the arguments as one value, in owned form: `&("bob".to_string(), 2)`.
    cache.get(&("bob", 2))?;
    // Not one by one.
    cache.invalidate("bob", 2)?;
    // Nor in another order.
    cache.set(&(2, "bob".to_string()), "hi".to_string())?;
    Ok(())
}
