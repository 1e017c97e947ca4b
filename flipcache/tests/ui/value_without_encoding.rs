// A value type with no encoding: the error names the three ways to give it one.
use flipcache::FlipCache;

#[derive(Clone)]
struct Stock {
    ticker: String,
}

fn main() {
    let _cache = FlipCache::<u64, Stock>::new("stocks");
}
