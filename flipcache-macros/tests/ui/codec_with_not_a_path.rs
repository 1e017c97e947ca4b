use flipcache::FlipCodec;

#[derive(FlipCodec, Clone)]
struct Quoted {
    #[flipcodec(with = "my_codec")]
    a: u8,
}

#[derive(FlipCodec, Clone)]
struct Number {
    #[flipcodec(with = 5)]
    a: u8,
}

#[derive(FlipCodec, Clone)]
struct Missing {
    #[flipcodec(with)]
    a: u8,
}

fn main() {}
