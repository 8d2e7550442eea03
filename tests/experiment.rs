//! `nmt experiment depth`: the smoke sweep writes its results, continues exactly after a
//! kill or a raised epoch cap, skips stopped depths, and refuses mismatched settings and
//! foreign folders without touching them.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ok, text};

fn nmt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmt"));
    // The smoke preset reads corpora/toy relative to the working directory.
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NMT_CORPORA")
        .env_remove("NMT_TEST_SAVE_PAUSE_MS");
    c
}

fn smoke(out: &Path, extra: &[&str]) -> Command {
    let mut c = nmt();
    c.args([
        "experiment",
        "depth",
        "--preset",
        "smoke",
        "--quiet",
        "--out",
    ])
    .arg(out)
    .args(extra);
    c
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

fn results(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// What must not depend on how the sweep was split into calls: per depth the epochs,
/// status, validation curve and test scores (not the timings).
fn outcome(out: &Path) -> Vec<serde_json::Value> {
    results(out)["depths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            serde_json::json!([
                d["layers"],
                d["epochs"],
                d["status"],
                d["valid_curve"],
                d["best_valid_ppl"],
                d["test"]
            ])
        })
        .collect()
}

#[test]
fn smoke_sweep_reports_every_depth_and_continues_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let stdout = ok(run(smoke(&full, &[])));
    assert!(stdout.contains("| layers | parameters |"), "{stdout}");
    let r = results(&full);
    let depths = r["depths"].as_array().unwrap();
    assert_eq!(depths.len(), 2);
    for (d, layers) in depths.iter().zip([1, 2]) {
        assert_eq!(d["layers"], layers);
        assert_eq!(d["epochs"], 4);
        assert_eq!(d["status"], "epoch cap");
        assert_eq!(d["valid_curve"].as_array().unwrap().len(), 4);
        let t = &d["test"];
        assert!(t["test_ppl"].as_f64().unwrap() > 1.0, "{t}");
        // The capacity view: perplexity on a fixed sample of the training pairs.
        assert!(t["train_ppl"].as_f64().unwrap() > 1.0, "{t}");
        assert!(t["test_bleu"].as_f64().unwrap() >= 0.0);
        assert_eq!(t["beam"], 5);
        let hyps = std::fs::read_to_string(full.join(format!("depth-{layers}/test.hyp"))).unwrap();
        assert_eq!(
            hyps.lines().count(),
            30,
            "one translation per test sentence"
        );
    }
    // The deeper model has more parameters; both share one tokenizer.
    assert!(depths[1]["parameters"].as_u64() > depths[0]["parameters"].as_u64());
    let md = std::fs::read_to_string(full.join("results.md")).unwrap();
    assert!(
        md.contains("Validation perplexity after each epoch"),
        "{md}"
    );
    assert!(md.contains("| train ppl |"), "{md}");
    // An evaluation written before the train perplexity existed is redone on the next call.
    let eval_file = full.join("depth-1/evaluation.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&eval_file).unwrap()).unwrap();
    let want = old["train_ppl"].clone();
    old.as_object_mut().unwrap().remove("train_ppl");
    std::fs::write(&eval_file, old.to_string()).unwrap();
    ok(run(smoke(&full, &[])));
    assert_eq!(results(&full)["depths"][0]["test"]["train_ppl"], want);
    for pic in ["depth.png", "depth.svg"] {
        assert!(
            std::fs::metadata(full.join(pic)).unwrap().len() > 1000,
            "{pic}"
        );
    }

    // Two epochs first, then the cap raised to four: the same models as in one go.
    let staged = tmp.path().join("staged");
    ok(run(smoke(&staged, &["--max-epochs", "2"])));
    assert!(results(&staged)["depths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["epochs"] == 2));
    ok(run(smoke(&staged, &["--max-epochs", "4"])));
    assert_eq!(outcome(&staged), outcome(&full));

    // Run again: every depth has stopped, so nothing is trained or changed.
    let metrics = full.join("depth-1/metrics.jsonl");
    let before = std::fs::read(&metrics).unwrap();
    ok(run(smoke(&full, &[])));
    assert_eq!(std::fs::read(&metrics).unwrap(), before);
    assert_eq!(outcome(&full), outcome(&tmp.path().join("full")));
}

/// `nmt experiment compare`: sweeps (folders or results files) side by side, with the
/// change per added layer computed from their test perplexities, and a plot that is not
/// written over unless asked.
#[test]
fn compare_summarises_sweeps_and_keeps_an_existing_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("depth-a");
    ok(run(smoke(&a, &["--max-epochs", "1"])));
    // Another sweep: the same numbers under other settings (a copy with its width changed).
    let mut other = results(&a);
    other["settings"]["hidden"] = serde_json::json!(64);
    let copy = tmp.path().join("depth-b.json");
    std::fs::write(&copy, other.to_string()).unwrap();
    let plot = tmp.path().join("sweeps.svg");
    let mut c = nmt();
    c.args(["experiment", "compare"])
        .arg(&a)
        .arg(&copy)
        .arg("--plot")
        .arg(&plot);
    let stdout = ok(run(c));
    let r = results(&a);
    let ppl = |i: usize| r["depths"][i]["test"]["test_ppl"].as_f64().unwrap();
    let change = format!("{:+.1} %", 100.0 * (ppl(1) / ppl(0) - 1.0));
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| depth-"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].starts_with("| depth-a | toy (") && rows[0].contains(&change),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("| depth-b | ")
            && rows[1].contains("hidden 64")
            && rows[1].contains(&change),
        "{stdout}"
    );
    assert!(
        stdout.contains("| 1 -> 2 |") && stdout.contains("| paper |"),
        "{stdout}"
    );
    let drawn = std::fs::read(&plot).unwrap();
    assert!(drawn.len() > 1000);

    // An existing plot stays as it was without --overwrite.
    std::fs::write(&plot, "mine").unwrap();
    let mut c = nmt();
    c.args(["experiment", "compare"])
        .arg(&a)
        .arg("--plot")
        .arg(&plot);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--overwrite"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), "mine");

    // A plot name that is neither .svg nor .png is refused before anything is drawn.
    let jpg = tmp.path().join("sweeps.jpg");
    let mut c = nmt();
    c.args(["experiment", "compare"])
        .arg(&a)
        .arg("--plot")
        .arg(&jpg);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(".svg or .png"),
        "{}",
        text(&o.stderr)
    );
    assert!(!jpg.exists());

    // A folder that is no sweep is named in the error.
    let mut c = nmt();
    c.args(["experiment", "compare"]).arg(tmp.path());
    let o = run(c);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&tmp.path().display().to_string())
            && err.contains("nmt experiment depth --out"),
        "{err}"
    );

    // So is a results file that is not one.
    let broken = tmp.path().join("broken.json");
    std::fs::write(&broken, "{\"depths\": [").unwrap();
    let mut c = nmt();
    c.args(["experiment", "compare"]).arg(&broken);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("broken.json") && err.contains("not the results.json of a depth sweep"),
        "{err}"
    );
}

/// A sweep run in sittings (each depth in its own fresh folder, as on two machines) is put
/// together by compare into the same row as the sweep run in one folder.
#[test]
fn compare_puts_a_sweep_run_in_sittings_together() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("depth-whole");
    ok(run(smoke(&whole, &["--max-epochs", "1"])));
    let first = tmp.path().join("depth-split");
    ok(run(smoke(&first, &["--max-epochs", "1", "--layers", "1"])));
    let second = tmp.path().join("depth-split-2");
    ok(run(smoke(&second, &["--max-epochs", "1", "--layers", "2"])));
    let row = |stdout: &str, name: &str| -> String {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no row {name} in {stdout}"));
        // The settings and per-layer change, without the name.
        line.splitn(3, '|').nth(2).unwrap().to_string()
    };
    let mut c = nmt();
    c.args(["experiment", "compare", "--details"])
        .arg(&first)
        .arg(&second);
    let split = ok(run(c));
    assert!(split.contains("| depth-split (2 sittings) |"), "{split}");
    assert_eq!(
        split.lines().filter(|l| l.starts_with("| depth-")).count(),
        1,
        "{split}"
    );
    let mut c = nmt();
    c.args(["experiment", "compare"]).arg(&whole);
    let one = ok(run(c));
    assert_eq!(
        row(&split, "depth-split"),
        row(&one, "depth-whole"),
        "{split}\n{one}"
    );
    // --details: the merged sweep's own table has both depths.
    assert!(
        split.contains("## depth-split (2 sittings)")
            && split.contains("\n| 1 | ")
            && split.contains("\n| 2 | ")
            && split.contains("--layers 1 && "),
        "{split}"
    );
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    ok(run(smoke(&full, &[])));

    let cut = tmp.path().join("cut");
    let mut c = smoke(&cut, &[]);
    // Slow saves so the kill lands in the middle of the sweep (often inside a save).
    c.env("NMT_TEST_SAVE_PAUSE_MS", "150");
    let mut child = c.spawn().unwrap();
    let started = Instant::now();
    while !cut.join("depth-2/checkpoints").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !cut.join("depth-2/evaluation.json").exists(),
        "killed before depth 2 finished its first epoch"
    );

    ok(run(smoke(&cut, &[])));
    assert_eq!(outcome(&cut), outcome(&full));
}

#[test]
fn ctrl_c_saves_and_the_same_command_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    ok(run(smoke(&full, &[])));

    let cut = tmp.path().join("cut");
    let mut c = smoke(&cut, &[]);
    c.env("NMT_TEST_SAVE_PAUSE_MS", "150")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let started = Instant::now();
    while !cut.join("depth-2/checkpoints").exists() {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("run the same command again"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        cut.join("results.md").exists(),
        "the results so far are written"
    );

    ok(run(smoke(&cut, &[])));
    assert_eq!(outcome(&cut), outcome(&full));
}

#[test]
fn mismatched_settings_and_foreign_folders_are_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    ok(run(smoke(&out, &["--max-epochs", "1", "--layers", "1"])));
    let settings = std::fs::read(out.join("experiment.json")).unwrap();

    let o = run(smoke(
        &out,
        &["--max-epochs", "1", "--layers", "1", "--hidden", "48"],
    ));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("hidden was 32 and is now 48"), "{err}");
    assert!(err.contains("choose another --out"), "{err}");
    assert_eq!(
        std::fs::read(out.join("experiment.json")).unwrap(),
        settings
    );
    assert!(
        !out.join("depth-1/config.json").exists() || {
            let cfg = std::fs::read_to_string(out.join("depth-1/config.json")).unwrap();
            cfg.contains("\"hidden\": 32")
        }
    );

    // A folder that holds something else is not a sweep to continue.
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let o = run(smoke(&foreign, &[]));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("holds no depth experiment"),
        "{}",
        text(&o.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(&foreign).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing was added");

    // Bad depths and half-given files fail before any work.
    let fresh = tmp.path().join("fresh");
    let o = run(smoke(&fresh, &["--layers", "1,0"]));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("layers must be between 1 and 8"),
        "{}",
        text(&o.stderr)
    );
    for (flags, says) in [
        (["--max-epochs", "0"], "--max-epochs must be at least 1"),
        (["--beam", "0"], "--beam must be at least 1"),
    ] {
        let o = run(smoke(&fresh, &flags));
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains(says), "{}", text(&o.stderr));
    }
    // The smoke preset's data is found relative to the repository.
    let mut elsewhere = smoke(&fresh, &[]);
    elsewhere.current_dir(tmp.path());
    let o = run(elsewhere);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("run it from the nmt repository"),
        "{}",
        text(&o.stderr)
    );
    let o = run(smoke(&fresh, &["--src-file", "corpora/toy/train.de"]));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("give all six of"),
        "{}",
        text(&o.stderr)
    );
    let o = run(smoke(
        &fresh,
        &[
            "--src-file",
            "corpora/toy/train.de",
            "--tgt-file",
            "corpora/toy/missing.en",
            "--valid-src-file",
            "corpora/toy/valid.de",
            "--valid-tgt-file",
            "corpora/toy/valid.en",
            "--test-src-file",
            "corpora/toy/test.de",
            "--test-tgt-file",
            "corpora/toy/test.en",
        ],
    ));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("missing.en"),
        "{}",
        text(&o.stderr)
    );
    assert!(!fresh.exists(), "nothing was created for a failed start");
}
