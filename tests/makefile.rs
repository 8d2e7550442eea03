//! The Makefile runs the binary cargo built, also when CARGO_TARGET_DIR moves it elsewhere.

use std::process::Command;

/// The commands `make -n demo` would run (nothing is built or run).
fn dry_run_demo(target_dir: Option<&str>) -> String {
    let mut make = Command::new("make");
    make.args(["-n", "demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match target_dir {
        Some(d) => make.env("CARGO_TARGET_DIR", d),
        None => make.env_remove("CARGO_TARGET_DIR"),
    };
    let out = make.output().expect("make is needed for `make test`");
    assert!(
        out.status.success(),
        "make -n demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_uses_the_binary_under_cargo_target_dir() {
    let moved = dry_run_demo(Some("/tmp/elsewhere"));
    assert!(
        moved.contains("/tmp/elsewhere/release/nmt train"),
        "{moved}"
    );
    assert!(
        !moved.contains("./target/release/nmt") && !moved.contains(" target/release/nmt"),
        "{moved}"
    );
    let default = dry_run_demo(None);
    assert!(default.contains("target/release/nmt train"), "{default}");
}
