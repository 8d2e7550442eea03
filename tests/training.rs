//! Training that never loses work: bit-exact resume after SIGKILL (also inside a save),
//! Ctrl-C, non-finite updates, early stopping, config files and their precedence.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{text, toy};

fn nmt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmt"));
    c.env_remove("NMT_CORPORA")
        .env_remove("NMT_TEST_SAVE_PAUSE_MS")
        .env_remove("NMT_TEST_NONFINITE_STEPS");
    c
}

/// A small run with dropout, label smoothing, Adam, validation and frequent saves: every
/// piece of state a resume must restore.
fn toy_args(out: &Path) -> Vec<String> {
    let extra = [
        "--layers",
        "2",
        "--hidden",
        "48",
        "--emb",
        "32",
        "--epochs",
        "3",
        "--save-every",
        "5",
        "--valid-every",
        "20",
        "--dropout",
        "0.1",
        "--label-smoothing",
        "0.1",
        "--keep-last",
        "2",
    ];
    common::toy_train_args(out, true, &extra)
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "nmt failed: {}{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    o
}

fn checkpoints(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits (up to 60 s) until `pred` holds for the run folder, then SIGKILLs the child.
fn kill_when(mut child: Child, dir: &Path, pred: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    while !pred(&checkpoints(dir)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "condition never met: {:?}",
            checkpoints(dir)
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nmt ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn bytes(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn final_files(dir: &Path) -> Vec<Vec<u8>> {
    let last = dir
        .join("checkpoints")
        .join(checkpoints(dir).last().unwrap());
    vec![
        bytes(dir.join("model.safetensors")),
        bytes(last.join("model.safetensors")),
        bytes(last.join("optimizer.safetensors")),
    ]
}

fn translate_works(dir: &Path) {
    let o = nmt()
        .args([
            "translate",
            "--model",
            dir.to_str().unwrap(),
            "Der Hund läuft.",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "model folder not loadable: {}",
        text(&o.stderr)
    );
}

#[test]
fn resume_after_sigkill_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok(nmt().args(toy_args(&whole)));

    let cut = tmp.path().join("cut");
    let slow = |c: &mut Command| {
        c.env("NMT_TEST_SAVE_PAUSE_MS", "150");
    };
    // 1. Killed inside a save: the half-written checkpoint exists only under a temporary name.
    let mut c = nmt();
    c.args(toy_args(&cut)).stdout(Stdio::null());
    slow(&mut c);
    kill_when(c.spawn().unwrap(), &cut, |ck| {
        ck.iter().any(|n| n.starts_with(".tmp-step-00000010"))
    });
    translate_works(&cut); // the run folder's model is whole
                           // 2. Resumed, then killed between saves, after two more checkpoints.
    let mut c = nmt();
    c.args([
        "train",
        "--out",
        cut.to_str().unwrap(),
        "--resume",
        "--quiet",
    ])
    .stdout(Stdio::null());
    slow(&mut c);
    kill_when(c.spawn().unwrap(), &cut, |ck| {
        ck.iter().any(|n| n == "step-00000030")
    });
    // 3. Resumed and killed at once, during start-up.
    let mut c = nmt();
    c.args([
        "train",
        "--out",
        cut.to_str().unwrap(),
        "--resume",
        "--quiet",
    ])
    .stdout(Stdio::null());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    kill_when(child, &cut, |_| true);
    // 4. Resumed to the end.
    run_ok(nmt().args([
        "train",
        "--out",
        cut.to_str().unwrap(),
        "--resume",
        "--quiet",
    ]));

    let (a, b) = (final_files(&whole), final_files(&cut));
    for (i, what) in ["best model", "last checkpoint's weights", "optimizer state"]
        .iter()
        .enumerate()
    {
        assert!(
            a[i] == b[i],
            "{what} differs between the uninterrupted and the killed+resumed run"
        );
    }
    assert_eq!(
        checkpoints(&whole),
        checkpoints(&cut),
        "same checkpoints kept"
    );
    // Metrics of redone work are not duplicated.
    let lines = |d: &Path| {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines(&whole), lines(&cut));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    run_ok(nmt().args(toy_args(&whole)));
    let cut = tmp.path().join("cut");
    let mut c = nmt();
    c.args(toy_args(&cut))
        .env("NMT_TEST_SAVE_PAUSE_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let start = Instant::now();
    while !checkpoints(&cut).iter().any(|n| n == "step-00000010") {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("--resume"), "{}", text(&o.stdout));
    let log = std::fs::read_to_string(cut.join("train.log")).unwrap();
    assert!(log.contains("interrupted at step"), "{log}");
    run_ok(nmt().args([
        "train",
        "--out",
        cut.to_str().unwrap(),
        "--resume",
        "--quiet",
    ]));
    assert!(
        final_files(&whole) == final_files(&cut),
        "Ctrl-C + resume differs from the uninterrupted run"
    );
}

#[test]
fn non_finite_updates_are_skipped_then_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run_ok(
        nmt()
            .args(toy_args(&out))
            .args(["--max-bad-steps", "3"])
            .env("NMT_TEST_NONFINITE_STEPS", "4,5"),
    );
    assert!(
        text(&o.stdout).contains("2 updates skipped (non-finite)"),
        "{}",
        text(&o.stdout)
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"skipped\":2"), "{metrics}");
    translate_works(&out);

    let out = tmp.path().join("bad");
    let o = nmt()
        .args(toy_args(&out))
        .args(["--max-bad-steps", "3"])
        .env("NMT_TEST_NONFINITE_STEPS", "12,13,14,15")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("3 updates in a row had a non-finite loss") && err.contains("--lr"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert_eq!(
        checkpoints(&out).last().unwrap(),
        "step-00000010",
        "the last good checkpoint is kept"
    );
    translate_works(&out);
}

#[test]
fn early_stopping_after_patience_validations() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // A learning rate too small to change any f32 weight: validation never improves.
    let o = run_ok(nmt().args(toy_args(&out)).args([
        "--lr",
        "1e-12",
        "--valid-every",
        "5",
        "--patience",
        "2",
    ]));
    assert!(
        text(&o.stdout).contains("stopped early"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stdout).contains("trained 15 steps"),
        "{}",
        text(&o.stdout)
    );
    let ck = checkpoints(&out);
    assert!(
        ck.contains(&"step-00000005".to_string()),
        "the best checkpoint is kept: {ck:?}"
    );
    assert_eq!(ck.last().unwrap(), "step-00000015");
}

#[test]
fn config_file_with_command_line_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let printed = run_ok(nmt().args(["train", "--print-config"]));
    let defaults: toml::Table =
        toml::from_str(&text(&printed.stdout)).expect("print-config is TOML");
    assert_eq!(defaults["layers"].as_integer(), Some(4));
    assert_eq!(defaults["clip_norm"].as_float(), Some(5.0));

    let f = |n: &str| toy(n).to_string_lossy().into_owned();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "src_file = {:?}\ntgt_file = {:?}\nlayers = 1\nhidden = 32\nemb = 16\nvocab_size = 400\nmax_steps = 3\nmax_len = 40\nbatch_tokens = 160\noptimizer = \"adam\"\n",
            f("train.de"),
            f("train.en")
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    run_ok(nmt().args([
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--hidden",
        "24",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(model["layers"], 1, "from the file");
    assert_eq!(model["hidden"], 24, "the flag wins over the file");
    let eff: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("train_config.toml")).unwrap()).unwrap();
    assert_eq!(eff["hidden"].as_integer(), Some(24));
    assert_eq!(eff["max_steps"].as_integer(), Some(3));
    assert_eq!(eff["optimizer"].as_str(), Some("adam"));

    std::fs::write(&cfg, "layerz = 2\n").unwrap();
    let o = nmt()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("run.toml: unknown option `layerz`"),
        "{}",
        text(&o.stderr)
    );

    // --resume on a folder without checkpoints, and a run folder that is not replaced.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = nmt()
        .args(toy_args(&empty))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(
        text(&o.stderr).contains("holds no checkpoint"),
        "{}",
        text(&o.stderr)
    );
    let before = bytes(out.join("model.safetensors"));
    let o = nmt().args(toy_args(&out)).output().unwrap();
    assert!(!o.status.success() && text(&o.stderr).contains("already holds a training run"));
    assert_eq!(before, bytes(out.join("model.safetensors")));
}

#[test]
fn plot_draws_svg_and_png_from_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run_ok(
        nmt()
            .args(toy_args(&out))
            .args(["--log-every", "5", "--valid-bleu"]),
    );
    let o = run_ok(nmt().args(["plot", out.to_str().unwrap()]));
    assert!(text(&o.stdout).contains("plot.svg"));
    let svg = std::fs::read_to_string(out.join("plot.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("validation BLEU") && svg.contains("training loss")
    );
    let png = tmp.path().join("curves.png");
    run_ok(nmt().args([
        "plot",
        out.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]));
    assert_eq!(&bytes(png.clone())[..4], b"\x89PNG");
    // Never replaces a file it was not asked to.
    let o = nmt()
        .args([
            "plot",
            out.to_str().unwrap(),
            "--out",
            png.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o.stderr).contains("curves.png already exists"));
    let o = nmt()
        .args([
            "plot",
            out.to_str().unwrap(),
            "--out",
            tmp.path().join("x.jpg").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        text(&o.stderr).contains("must end in .svg or .png"),
        "{}",
        text(&o.stderr)
    );
    let o = nmt()
        .args(["plot", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stderr).contains("metrics.jsonl"),
        "{}",
        text(&o.stderr)
    );
}

/// Resuming with flags that cut the epoch into other batches (here one batch where the
/// checkpoint stood three batches in) is refused with a message naming the flags, instead of
/// a panic or training on other data; the run's files stay as they were.
#[test]
fn resume_with_other_batching_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run_ok(nmt().args(toy_args(&out)).args(["--max-steps", "3"]));
    let files = ["model.safetensors", "train_config.toml", "train.log"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| bytes(out.join(f))).collect();
    let resume = |extra: &[&str]| {
        nmt()
            .args([
                "train",
                "--out",
                out.to_str().unwrap(),
                "--resume",
                "--quiet",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = resume(&["--batch-tokens", "100000", "--max-steps", "6"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("3 batches into epoch 1") && err.contains("--batch-tokens"),
        "{err}"
    );
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(b, &bytes(out.join(f)), "{f} changed");
    }
    // With the run's own batching it goes on.
    let o = resume(&["--max-steps", "6"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
