//! Running an example of this crate from a test, as `cargo run --example NAME`.
//!
//! Through `cargo run` rather than a path under `target/`: that binary may be missing
//! (`cargo test --test NAME` does not build examples) or stale. The target directory and the
//! profile are the ones the test was built with, so nothing is rebuilt in vain, and the example
//! runs the very same compiled kernels as the test (bit-identical floating-point outputs are only
//! guaranteed within one build).

use std::path::Path;
use std::process::Command;

/// `cargo run --quiet --features FEATURES --example NAME --`, ready for the example's arguments.
pub fn cargo_example(name: &str, features: &[&str]) -> Command {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "run",
        "--quiet",
        "--features",
        &features.join(","),
        "--example",
        name,
    ]);
    cargo.arg("--manifest-path").arg(&manifest);
    // This executable is `<target>/<profile dir>/deps/<test>-<hash>`: build the example into
    // the same target directory with the same profile. (Under `--target TRIPLE` the layout has
    // one more level, which the `CACHEDIR.TAG` that cargo writes at the root tells apart; then
    // cargo's own choice stands.)
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.ancestors().nth(2);
    let target = exe.ancestors().nth(3);
    if let (Some(profile_dir), Some(target)) = (profile_dir, target)
        && target.join("CACHEDIR.TAG").is_file()
    {
        cargo.arg("--target-dir").arg(target);
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
    }
    cargo.arg("--");
    cargo
}
