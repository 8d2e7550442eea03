//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use nmt::config::ModelConfig;
use nmt::model::{params, Seq2Seq};
use nmt::rng::Rng;

/// Where skipped tests are listed for `make test` to print: a test that cannot run here (a
/// tool missing) passes, so the log must say what did not run.
pub const SKIPPED_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");

/// Records that `test` did not run, and why (printed and listed in `SKIPPED_FILE`).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    eprintln!("SKIPPED: {test}: {why}");
    let line = format!("{test}: {why}\n");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIPPED_FILE);
    if let Ok(mut f) = file {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The repository's toy corpus file, e.g. `toy("train.de")`.
pub fn toy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpora/toy")
        .join(name)
}

/// A `(shape)` tensor uniform in [-scale, scale) from `rng`.
pub fn rand_tensor(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.uniform(-scale, scale)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Largest |a - b| relative to the largest |b| (both flattened).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A model with seeded weights whose tensors are `Var`s (so gradients can be taken).
pub fn trainable_model(cfg: &ModelConfig, seed: u64) -> (Seq2Seq, Vec<(String, Var)>) {
    let init = params::init_uniform(cfg, seed, &Device::Cpu).unwrap();
    let mut vars = Vec::new();
    let mut tensors = HashMap::new();
    for (name, t) in init {
        let v = Var::from_tensor(&t).unwrap();
        tensors.insert(name.clone(), v.as_tensor().clone());
        vars.push((name, v));
    }
    (Seq2Seq::from_tensors(cfg, &tensors).unwrap(), vars)
}

/// A small model config.
pub fn small_cfg(layers: usize, vocab: usize, emb: usize, hidden: usize) -> ModelConfig {
    ModelConfig {
        src_vocab: vocab,
        tgt_vocab: vocab + 3,
        emb,
        hidden,
        layers,
        ..ModelConfig::default()
    }
}

/// `nmt train` arguments for a small model that learns corpora/toy in seconds (1 layer,
/// hidden 128, BPE 400, Adam 0.01, 40 epochs), with or without the toy validation set;
/// `extra` flags come last and override these.
pub fn toy_train_args(out: &std::path::Path, with_valid: bool, extra: &[&str]) -> Vec<String> {
    let f = |n: &str| toy(n).to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "train".into(),
        "--src-file".into(),
        f("train.de"),
        "--tgt-file".into(),
        f("train.en"),
    ];
    if with_valid {
        args.extend([
            "--valid-src-file".into(),
            f("valid.de"),
            "--valid-tgt-file".into(),
            f("valid.en"),
        ]);
    }
    let fixed = [
        "--layers",
        "1",
        "--hidden",
        "128",
        "--emb",
        "64",
        "--vocab-size",
        "400",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-tokens",
        "160",
        "--max-len",
        "40",
        "--epochs",
        "40",
        "--quiet",
    ];
    args.extend(["--out".to_string(), out.to_string_lossy().into_owned()]);
    args.extend(fixed.iter().chain(extra).map(|s| s.to_string()));
    args
}

/// Lossy UTF-8 of a command's output bytes.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The stdout of a command that must have succeeded (its stderr in the failure message).
pub fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "nmt failed: {}", text(&o.stderr));
    text(&o.stdout)
}

/// `n` short sources of ids below `vocab`, lengths 2 to 6.
pub fn sample_sources(n: usize, vocab: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            (0..2 + i % 5)
                .map(|j| (5 + 3 * i + j) as u32 % vocab)
                .collect()
        })
        .collect()
}

/// Four search steps of two scorers over `sources`, reordered as a beam would (one row
/// duplicated, another dropped) after each: their log-probabilities agree within 1e-5, and
/// their peaks (models with attention) exactly. Next tokens are ids below `vocab`.
pub fn scorers_step_alike<A: nmt::search::Scorer, B: nmt::search::Scorer>(
    a: &A,
    b: &B,
    sources: &[&[u32]],
    bos: u32,
    vocab: u32,
    label: &str,
) {
    let n = sources.len();
    let (mut sa, mut sb) = (a.start(sources).unwrap(), b.start(sources).unwrap());
    let mut prev = vec![bos; n];
    let (mut lp_a, mut lp_b) = (Vec::new(), Vec::new());
    for step in 0..4 {
        let next_a = a.step(&sa, &prev, &mut lp_a).unwrap();
        let next_b = b.step(&sb, &prev, &mut lp_b).unwrap();
        assert_eq!(lp_a.len(), n * a.vocab_size(), "{label}");
        assert_eq!(lp_b.len(), n * b.vocab_size(), "{label}");
        let worst = lp_a
            .iter()
            .zip(&lp_b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst < 1e-5,
            "{label}, {n} rows, step {step}: largest difference {worst}"
        );
        assert_eq!(
            a.peaks(&next_a),
            b.peaks(&next_b),
            "{label}, step {step}: peaks differ"
        );
        let rows: Vec<usize> = (0..n).map(|i| if i == 0 { n - 1 } else { i - 1 }).collect();
        sa = a.reorder(&next_a, &rows).unwrap();
        sb = b.reorder(&next_b, &rows).unwrap();
        prev = (0..n)
            .map(|i| ((step * 7 + i * 5) as u32) % vocab)
            .collect();
    }
}
