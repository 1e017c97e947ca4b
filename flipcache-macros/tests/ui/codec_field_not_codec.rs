use flipcache::FlipCodec;

#[derive(FlipCodec, Clone)]
struct Peer {
    addr: std::net::Ipv4Addr,
    #[flipcodec(skip)]
    socket: NoDefault,
}

#[derive(Clone)]
struct NoDefault;

fn main() {}
