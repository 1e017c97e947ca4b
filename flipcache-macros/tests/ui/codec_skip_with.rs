use flipcache::FlipCodec;

mod codec {}

#[derive(FlipCodec, Clone)]
struct Both {
    #[flipcodec(skip, with = codec)]
    a: u8,
}

fn main() {}
