//! Every error a user of `#[flipcache]` can make, and what the compiler says.

#[test]
fn memoize_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/memoize_*.rs");
}
