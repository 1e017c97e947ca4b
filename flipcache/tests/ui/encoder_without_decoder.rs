// A cache that could write values but not read them back does not compile.
use flipcache::FlipCache;

fn main() {
    let _cache = FlipCache::<u64, (i32, i32)>::builder("points")
        .value_encoder(|p: &(i32, i32)| format!("{},{}", p.0, p.1))
        .build();
}
