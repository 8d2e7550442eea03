//! `nmt bench` speaks the PyTorch baseline's language: the same flags, and JSON records whose
//! "result" holds the same keys, so `make bench` can compare the two line for line.

use std::process::Command;

#[test]
fn bench_records_have_the_baseline_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.jsonl");
    let small = [
        "--layers",
        "2",
        "--hidden",
        "16",
        "--emb",
        "8",
        "--src-vocab",
        "40",
        "--tgt-vocab",
        "50",
        "--batch",
        "4",
        "--src-len",
        "5",
        "--tgt-len",
        "6",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--max-len",
        "7",
    ];
    for (mode, keys) in [
        ("train", ["tgt_tok_per_s_median", "ms_per_step_median"]),
        (
            "decode-greedy",
            ["sent_per_s_median", "ms_per_batch_median"],
        ),
        ("decode-beam", ["sent_per_s_median", "ms_per_batch_median"]),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["bench", mode])
            .args(small)
            .args(["--json", json.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            line.starts_with(mode) && (line.contains("tok/s") || line.contains("sent/s")),
            "{line}"
        );
        let text = std::fs::read_to_string(&json).unwrap();
        let rec: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        for k in keys {
            assert!(
                rec["result"][k].as_f64().unwrap() > 0.0,
                "{mode}: result.{k} missing in {rec}"
            );
        }
        if mode == "train" {
            // 4 sentences x 6 target tokens; the loss of random data starts near ln(50).
            assert_eq!(rec["result"]["tgt_tokens_per_step"], 24);
            // The three phases of a step are reported in ms: each median is at most the
            // slowest step.
            let phase = |k: &str| rec["result"][k].as_f64().unwrap();
            let parts = [
                "ms_forward_median",
                "ms_backward_median",
                "ms_update_median",
            ];
            assert!(parts.iter().all(|k| phase(k) > 0.0), "{rec}");
            assert!(
                parts.iter().all(|k| phase(k) <= phase("ms_per_step_max")),
                "{rec}"
            );
            assert!((rec["result"]["loss_first"].as_f64().unwrap() - 50f64.ln()).abs() < 0.2);
        }
    }
    assert_eq!(
        std::fs::read_to_string(&json).unwrap().lines().count(),
        3,
        "one record appended per run"
    );
}

/// `make bench` with a number of runs it cannot use stops before running anything, naming
/// the variable and what to set, with a non-zero exit.
#[test]
fn bench_rejects_a_bad_number_of_runs() {
    let python = std::env::var("NMT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench.py");
    for bad in ["0", "three", "-2", ""] {
        let o = std::process::Command::new(&python)
            .arg(&script)
            .env("NMT_BENCH_ROUNDS", bad)
            .output()
            .expect("python3 runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad:?} was accepted");
        assert!(
            err.contains("NMT_BENCH_ROUNDS") && err.contains("at least 1"),
            "{bad:?}: {err}"
        );
    }
}

/// `make bench` records how far apart two threads run before every run: the figure is a
/// round trip per round, and their median.
#[test]
fn core_to_core_reports_a_round_trip_per_round() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("cores.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(["bench", "core-to-core", "--steps", "3", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line.starts_with("core-to-core: ") && line.contains(" ns "),
        "{line}"
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let rec: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let rounds = rec["result"]["round_trip_ns"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{rec}");
    let median = rec["result"]["round_trip_ns_median"].as_f64().unwrap();
    assert!(
        median > 0.0 && rounds.iter().any(|r| r.as_f64() == Some(median)),
        "{rec}"
    );
}

/// `nmt bench --device` picks the device like the other commands: a GPU that is not built in
/// (or a malformed name) is refused with the fix, before any model is built.
#[test]
fn bench_names_a_device_it_cannot_use() {
    let run = |device: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["bench", "train", "--steps", "1", "--device", device])
            .output()
            .unwrap()
    };
    #[cfg(not(feature = "cuda"))]
    {
        let o = run("cuda");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("built without CUDA"), "{err}");
    }
    let o = run("tpu");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown device `tpu`"), "{err}");
}
