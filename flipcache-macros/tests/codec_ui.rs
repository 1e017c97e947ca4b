//! Every error a user of `#[derive(FlipCodec)]` can make, and what the compiler says.

#[test]
fn codec_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/codec_*.rs");
}
