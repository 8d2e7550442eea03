//! `nmt translate` options and formats, ensembles, `nmt score` and `nmt eval` without a model,
//! through the built binary, on one toy model trained once for the whole file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{ok, text, toy};

fn nmt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(args)
        .env_remove("NMT_CORPORA")
        .output()
        .expect("run nmt")
}

fn train(out: &Path, vocab: &str) {
    let args = common::toy_train_args(out, false, &["--vocab-size", vocab]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(nmt(&args));
}

/// A toy model trained once for all tests in this file.
fn model() -> &'static str {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toy");
        train(&path, "400");
        (dir, path)
    });
    path.to_str().unwrap()
}

const SENTENCES: [&str; 2] = ["Der Hund läuft im Park.", "Eine Frau lacht."];

#[test]
fn n_best_lists_in_tsv_and_jsonl() {
    let out = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--beam",
        "4",
        "--n-best",
        "3",
        "--format",
        "tsv",
        SENTENCES[0],
        SENTENCES[1],
    ]));
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 6, "{out}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), 4, "{out}");
        assert_eq!(r[0], (i / 3 + 1).to_string());
        assert_eq!(r[1], (i % 3 + 1).to_string());
    }
    for pair in rows.chunks(3) {
        let scores: Vec<f32> = pair.iter().map(|r| r[2].parse().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{out}");
    }
    assert_eq!(rows[0][3], "The dog runs in the park.");

    let out = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--n-best",
        "2",
        "--format",
        "jsonl",
        SENTENCES[1],
    ]));
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["text"], "A woman laughs.");
    assert_eq!(objs[1]["rank"], 2);
    assert!(objs[0]["score"].as_f64().unwrap() >= objs[1]["score"].as_f64().unwrap());
    assert!(objs[0]["log_prob"].as_f64().unwrap() <= 0.0);

    let o = nmt(&[
        "translate",
        "--model",
        model(),
        "--beam",
        "2",
        "--n-best",
        "3",
        "x",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("n-best must be between 1 and the beam width (2)"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn min_len_and_length_penalties_change_outputs_sensibly() {
    let plain = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--length-penalty",
        "none",
        SENTENCES[1],
    ]));
    assert_eq!(plain, "A woman laughs.\n");
    let long = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--min-len",
        "8",
        SENTENCES[1],
    ]));
    let ids_len = long.split_whitespace().count();
    assert!(long.trim() != "A woman laughs." && ids_len >= 3, "{long}");
    ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--length-penalty",
        "gnmt",
        "--length-alpha",
        "0.6",
        SENTENCES[0],
    ]));
}

#[test]
fn ensembles_average_and_refuse_other_vocabularies() {
    let one = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--n-best",
        "2",
        "--format",
        "tsv",
        SENTENCES[0],
        SENTENCES[1],
    ]));
    let two = ok(nmt(&[
        "translate",
        "--model",
        model(),
        "--model",
        model(),
        "--n-best",
        "2",
        "--format",
        "tsv",
        SENTENCES[0],
        SENTENCES[1],
    ]));
    assert_eq!(one, two, "an ensemble of a model with itself is that model");

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    train(&other, "300");
    let o = nmt(&[
        "translate",
        "--model",
        model(),
        "--model",
        other.to_str().unwrap(),
        "x",
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("different target vocabulary") && err.contains("other"),
        "{err}"
    );
}

#[test]
fn score_gives_per_sentence_and_total_log_probabilities() {
    let (src, tgt) = (toy("test.de"), toy("test.en"));
    let out = ok(nmt(&[
        "score",
        "--model",
        model(),
        "--src-file",
        src.to_str().unwrap(),
        "--tgt-file",
        tgt.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 31);
    let mut sum = 0f64;
    let mut tokens = 0usize;
    for (i, l) in lines[..30].iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f[0], (i + 1).to_string());
        let lp: f64 = f[1].parse().unwrap();
        let n: usize = f[2].parse().unwrap();
        let ppl: f64 = f[3].parse().unwrap();
        assert!(lp <= 0.0 && n >= 2);
        assert!((ppl - (-lp / n as f64).exp()).abs() < 1e-3 * ppl);
        sum += lp;
        tokens += n;
    }
    let total: Vec<&str> = lines[30].split('\t').collect();
    assert_eq!(total[0], "total");
    assert!((total[1].parse::<f64>().unwrap() - sum).abs() < 0.01);
    assert_eq!(total[2].parse::<usize>().unwrap(), tokens);
    // The same perplexity `nmt eval` reports.
    let eval = ok(nmt(&[
        "eval",
        "--model",
        model(),
        "--src-file",
        src.to_str().unwrap(),
        "--ref-file",
        tgt.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&eval).unwrap();
    let ppl: f64 = total[3].parse().unwrap();
    assert!(
        (v["perplexity"].as_f64().unwrap() - ppl).abs() < 1e-3,
        "{eval}"
    );
    assert!(
        v["sentences_per_sec"].as_f64().unwrap() > 0.0
            && v["tokens_per_sec"].as_f64().unwrap() > 0.0
    );
}

#[test]
fn eval_scores_given_translations() {
    let refs = toy("test.en");
    let r = refs.to_str().unwrap();
    let out = ok(nmt(&["eval", "--hyp-file", r, "--ref-file", r]));
    assert!(out.starts_with("BLEU = 100.00 "), "{out}");
    assert!(
        out.contains("chrF2 = 100.00") && out.contains("nc:6|nw:0|space:no"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(nmt(&[
        "eval",
        "--hyp-file",
        r,
        "--ref-file",
        r,
        "--json",
    ])))
    .unwrap();
    assert!((v["bleu"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(v["sentences"], 30);
    let o = nmt(&[
        "eval",
        "--hyp-file",
        toy("train.en").to_str().unwrap(),
        "--ref-file",
        r,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("train.en has 300 lines"),
        "{}",
        text(&o.stderr)
    );
}

/// With a terminal on stdin, translate prompts and answers line by line until EOF.
/// `script` (util-linux) provides the terminal.
#[test]
fn interactive_translation_on_a_terminal() {
    let cmd = format!(
        "{} translate --model {}",
        env!("CARGO_BIN_EXE_nmt"),
        model()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`script` from util-linux runs the terminal test");
    use std::io::Write;
    // Ctrl-D on an empty line is EOF for the program behind the terminal.
    child
        .stdin
        .take()
        .unwrap()
        .write_all("Eine Frau lacht.\n\x04".as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("> A woman laughs.\r\n> "), "{out:?}");
}
