// The same through the builder: `build` needs a codec, and the default one needs `FlipValue`.
use flipcache::FlipCache;

#[derive(Clone)]
struct Stock {
    ticker: String,
}

fn main() {
    let _cache = FlipCache::<u64, Stock>::builder("stocks").local_max(10).build();
}
