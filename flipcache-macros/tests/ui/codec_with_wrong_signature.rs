use flipcache::{DecodeError, FlipCodec, Reader};

mod as_u32 {
    use super::*;
    // For a `u32`, not the field's `String`.
    pub fn encode(value: &u32, out: &mut Vec<u8>) {
        value.encode(out);
    }
    pub fn decode(input: &mut Reader<'_>) -> Result<u32, DecodeError> {
        u32::decode(input)
    }
}

mod no_decode {
    pub fn encode(_: &String, _: &mut Vec<u8>) {}
}

#[derive(FlipCodec, Clone)]
struct Wrong {
    #[flipcodec(with = as_u32)]
    name: String,
}

#[derive(FlipCodec, Clone)]
struct Half {
    #[flipcodec(with = no_decode)]
    name: String,
}

fn main() {}
