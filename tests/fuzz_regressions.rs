//! The fuzz targets' inputs replayed: the seeds `make fuzz` starts from, and the inputs kept
//! under tests/fixtures/fuzz/<target>/: any crash a fuzzer found (named crash-*, kept after
//! its fix) and a sample of the inputs that reached new code in the fuzzers' runs.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn seeds_run_clean_through_every_target() {
    let dir = tempfile::tempdir().unwrap();
    harness::write_seeds(dir.path());
    let inputs = harness::inputs(dir.path());
    for target in ["corpus", "checkpoint", "translate"] {
        assert!(!inputs[target].is_empty(), "no seed for {target}");
    }
    for (target, files) in inputs {
        for file in files {
            harness::run(&target, &std::fs::read(&file).unwrap());
        }
    }
}

#[test]
fn inputs_the_fuzzers_found_run_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let inputs = harness::inputs(&dir);
    assert!(
        inputs.values().map(Vec::len).sum::<usize>() > 0,
        "no input kept under {dir:?}"
    );
    for (target, files) in inputs {
        for file in files {
            eprintln!("replaying {}", file.display());
            harness::run(&target, &std::fs::read(&file).unwrap());
        }
    }
}

/// `make fuzz` calls this to write the seeds into $NMT_FUZZ_SEEDS.
#[test]
#[ignore = "run by make fuzz"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("NMT_FUZZ_SEEDS").expect("set NMT_FUZZ_SEEDS to a folder");
    harness::write_seeds(Path::new(&dir));
}
