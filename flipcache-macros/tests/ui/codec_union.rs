use flipcache::FlipCodec;

#[derive(FlipCodec, Clone, Copy)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {
    // The fallback impl keeps this line from adding a second error.
    let _ = flipcache::to_bytes(&Bits { int: 1 });
}
