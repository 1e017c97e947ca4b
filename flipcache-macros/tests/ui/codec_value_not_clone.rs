use flipcache::FlipCodec;

// A cache value must be `Clone`: the derived `FlipValue` impl says so.
#[derive(FlipCodec)]
struct NotClone {
    a: u8,
}

// Fine: `no_value` leaves `FlipValue` out.
#[derive(FlipCodec)]
#[flipcodec(no_value)]
struct NestedOnly {
    a: u8,
}

fn main() {}
