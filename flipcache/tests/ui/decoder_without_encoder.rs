// Nor one that could read values but not write them.
use flipcache::FlipCache;

fn main() {
    let _cache = FlipCache::<u64, u8>::builder("bytes")
        .value_decoder_bytes(|b: &[u8]| b.first().copied().ok_or("empty"))
        .build();
}
