use flipcache::FlipCodec;

#[derive(FlipCodec, Clone)]
#[flipcodec(skip)]
struct OnType {
    a: u8,
}

#[derive(FlipCodec, Clone)]
struct OnField {
    #[flipcodec(rename = "b")]
    a: u8,
    #[flipcodec(skip, skip)]
    c: u8,
}

#[derive(FlipCodec, Clone)]
enum OnVariant {
    #[flipcodec(skip)]
    A,
    B(u8),
}

fn main() {}
