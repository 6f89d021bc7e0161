//! Compile-time guarantees of `#[flow]`: every graph mistake is one compile error on the token at
//! fault (`tests/ui/fail`), and every transition kind compiles and describes itself
//! (`tests/ui/pass`, which trybuild also runs).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
