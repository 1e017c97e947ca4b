//! Compile-time misuses of the runtime crate: each `tests/ui/*.rs` must fail to compile with
//! the diagnostic in its `.stderr` (regenerate with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
