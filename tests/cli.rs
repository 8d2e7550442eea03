//! The built `nmt` binary end to end on the toy corpus, and every user mistake we know of:
//! a clear message naming the thing, a non-zero exit, never a panic.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use candle_core::{Device, Tensor};
use common::toy;

fn nmt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(args)
        .env_remove("NMT_CORPORA")
        .output()
        .expect("run nmt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails with a clear message, no panic.
fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

fn train_toy(out: &Path, extra: &[&str]) -> Output {
    let args = common::toy_train_args(out, true, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nmt(&args)
}

#[test]
fn train_translate_eval_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train_toy(&run, &[]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    assert!(stdout(&o).contains("target tokens/s"), "{}", stdout(&o));
    for f in [
        "model.safetensors",
        "config.json",
        "src_tokenizer.json",
        "tgt_tokenizer.json",
        "train.log",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let model = run.to_str().unwrap();

    // Sentences as arguments, in order.
    let o = nmt(&[
        "translate",
        "--model",
        model,
        "Der Hund läuft im Park.",
        "Eine Frau lacht.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "The dog runs in the park.\nA woman laughs.\n");

    // From stdin, blank lines kept in place.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(["translate", "--model", model, "--beam", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("Die Katze schläft.\n\nDas Kind spielt im Schnee.\n".as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        stdout(&o),
        "The cat sleeps.\n\nThe child plays in the snow.\n"
    );

    // From a file into a file; an existing output is not replaced.
    let hyp = dir.path().join("test.hyp");
    let test_de = toy("test.de");
    let o = nmt(&[
        "translate",
        "--model",
        model,
        "--input",
        test_de.to_str().unwrap(),
        "--output",
        hyp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hyps = std::fs::read_to_string(&hyp).unwrap();
    let refs = std::fs::read_to_string(toy("test.en")).unwrap();
    assert_eq!(hyps.lines().count(), refs.lines().count());
    let same = hyps
        .lines()
        .zip(refs.lines())
        .filter(|(h, r)| h == r)
        .count();
    assert!(
        same >= 25,
        "only {same}/30 unseen toy sentences translated exactly"
    );
    let o = nmt(&[
        "translate",
        "--model",
        model,
        "--input",
        test_de.to_str().unwrap(),
        "--output",
        hyp.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["test.hyp already exists", "--overwrite"]);

    // Eval prints BLEU with its signature and perplexity.
    let o = nmt(&[
        "eval",
        "--model",
        model,
        "--src-file",
        test_de.to_str().unwrap(),
        "--ref-file",
        toy("test.en").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("BLEU = "), "{out}");
    assert!(
        out.contains("tok:13a|smooth:exp") && out.contains("perplexity = "),
        "{out}"
    );
    let bleu: f64 = out[7..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(bleu > 80.0, "toy test BLEU {bleu}");

    // A second train into the same folder is refused; the model stays.
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    let o = train_toy(&run, &["--max-steps", "1"]);
    assert_clean_failure(
        &o,
        &["already holds a training run", "--resume", "--overwrite"],
    );
    assert_eq!(
        before,
        std::fs::read(run.join("model.safetensors")).unwrap()
    );
}

#[test]
fn corpus_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    std::fs::write(d("three.txt"), "a\nb\nc\n").unwrap();
    std::fs::write(d("two.txt"), "a\nb\n").unwrap();
    std::fs::write(d("empty.txt"), "").unwrap();
    let out = d("run");
    let p = |n: &str| d(n).to_str().unwrap().to_string();
    let train = |s: &str, t: &str| {
        nmt(&[
            "train",
            "--src-file",
            s,
            "--tgt-file",
            t,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
    };
    assert_clean_failure(
        &train(&p("three.txt"), &p("two.txt")),
        &["three.txt has 3 lines", "two.txt has 2"],
    );
    assert_clean_failure(
        &train(&p("missing.txt"), &p("two.txt")),
        &["missing.txt", "exists"],
    );
    assert_clean_failure(
        &train(&p("empty.txt"), &p("empty.txt")),
        &["empty.txt is empty"],
    );
    let o = nmt(&["train", "--corpus", "wmt99", "--out", out.to_str().unwrap()]);
    assert_clean_failure(&o, &["unknown corpus `wmt99`"]);
    let o = nmt(&[
        "train",
        "--src-file",
        &p("two.txt"),
        "--tgt-file",
        &p("two.txt"),
        "--out",
        out.to_str().unwrap(),
        "--layers",
        "9",
    ]);
    assert_clean_failure(&o, &["layers must be between 1 and 8"]);
    // A cuda build fails here too where no GPU opens, with its own message.
    let o = nmt(&[
        "translate",
        "--model",
        out.to_str().unwrap(),
        "--device",
        "cuda",
        "x",
    ]);
    assert_clean_failure(&o, &["--device cpu"]);
}

/// A real (untrained) model folder to damage.
fn model_dir(dir: &Path) -> std::path::PathBuf {
    let run = dir.join("model");
    let o = train_toy(&run, &["--max-steps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    run
}

#[test]
fn damaged_model_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = model_dir(dir.path());
    let translate = |m: &Path| nmt(&["translate", "--model", m.to_str().unwrap(), "Hallo."]);

    assert_clean_failure(
        &translate(&dir.path().join("nowhere")),
        &["nowhere", "no such model folder"],
    );

    // No config.json.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(
        run.join("model.safetensors"),
        bare.join("model.safetensors"),
    )
    .unwrap();
    assert_clean_failure(&translate(&bare), &["config.json"]);

    // Unknown format version.
    let cfg_path = run.join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        cfg.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .unwrap();
    assert_clean_failure(&translate(&run), &["config.json", "format_version 99"]);
    std::fs::write(&cfg_path, &cfg).unwrap();

    // A tensor with the wrong shape, then a missing tensor.
    let weights = run.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let good = tensors.clone();
    tensors.insert(
        "decoder.weight_hh_l0".into(),
        Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    assert_clean_failure(
        &translate(&run),
        &["model.safetensors", "decoder.weight_hh_l0", "shape [3, 3]"],
    );
    let mut missing = good.clone();
    missing.remove("proj.bias");
    candle_core::safetensors::save(&missing, &weights).unwrap();
    assert_clean_failure(
        &translate(&run),
        &["model.safetensors", "`proj.bias` is missing"],
    );

    // Not a safetensors file at all.
    std::fs::write(&weights, b"garbage").unwrap();
    assert_clean_failure(
        &translate(&run),
        &["model.safetensors", "cannot read the weights"],
    );

    // A missing tokenizer.
    candle_core::safetensors::save(&good, &weights).unwrap();
    std::fs::remove_file(run.join("tgt_tokenizer.json")).unwrap();
    assert_clean_failure(&translate(&run), &["tgt_tokenizer.json", "is missing"]);
}

#[test]
fn corpus_lookup_failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // No network: the download fails fast against a closed local port.
    let fetch = || {
        Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args([
                "corpus",
                "fetch",
                "multi30k",
                "--dir",
                cache.to_str().unwrap(),
            ])
            .env_remove("NMT_CORPORA")
            .env("NMT_MULTI30K_URL", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    assert_clean_failure(&fetch(), &["download failed", "NMT_CORPORA", "train.de.gz"]);

    // A damaged file in the cache is caught by its SHA-256.
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("test_2016_flickr.de.gz"), b"not the real file").unwrap();
    assert_clean_failure(
        &fetch(),
        &["test_2016_flickr.de.gz has SHA-256", "delete it"],
    );

    // NMT_CORPORA pointing at a folder without Multi30k.
    let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args([
            "train",
            "--corpus",
            "multi30k",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ])
        .env("NMT_CORPORA", dir.path())
        .output()
        .unwrap();
    assert_clean_failure(&o, &["NMT_CORPORA is set", "multi30k"]);
}

/// Serves `body` to every HTTP request on a local port, for download tests without a network.
fn serve_once(body: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    url
}

#[test]
fn europarl_fetch_failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("europarl");
    let fetch = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["corpus", "fetch", "europarl", "--dir"])
            .arg(&cache)
            .env_remove("NMT_CORPORA")
            .env("NMT_EUROPARL_URL", url)
            .output()
            .unwrap()
    };
    // No network: the message names the archive and the two offline routes.
    assert_clean_failure(
        &fetch("http://127.0.0.1:9"),
        &[
            "training-parallel-europarl-v7.tgz: download failed",
            "copy training-parallel-europarl-v7.tgz",
            "NMT_CORPORA",
        ],
    );
    // A server that answers with something else: caught by the SHA-256, and nothing is kept.
    let url = serve_once(b"<html>not the archive</html>");
    assert_clean_failure(
        &fetch(&url),
        &[
            "training-parallel-europarl-v7.tgz has SHA-256",
            "expected 0224c7c7",
        ],
    );
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A damaged archive copied in by hand.
    std::fs::write(
        cache.join("training-parallel-europarl-v7.tgz"),
        b"truncated",
    )
    .unwrap();
    assert_clean_failure(&fetch("http://127.0.0.1:9"), &["has SHA-256", "delete it"]);
    // The user's file is not deleted on a mismatch.
    assert!(cache.join("training-parallel-europarl-v7.tgz").is_file());

    // Languages and splits are checked before any download.
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let o = nmt(&[
        "train", "--corpus", "europarl", "--pair", "fr-en", "--out", run,
    ]);
    assert_clean_failure(&o, &["`fr-en` is not a europarl pair", "de, en"]);
    let o = nmt(&[
        "eval",
        "--model",
        run,
        "--corpus",
        "europarl",
        "--split",
        "test_2016_flickr",
    ]);
    assert_clean_failure(
        &o,
        &[
            "unknown split `test_2016_flickr` of europarl",
            "train, val, test",
        ],
    );
    // NMT_CORPORA without the prepared subset.
    let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(["corpus", "fetch", "europarl"])
        .env("NMT_CORPORA", dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert_clean_failure(&o, &["NMT_CORPORA is set", "europarl/", "train.de.gz"]);
}

#[test]
fn prepared_europarl_copy_trains_and_evaluates() {
    // A prepared copy in $NMT_CORPORA/europarl/ (the toy corpus under Europarl's file names;
    // gzip is detected by content, so plain text is read as it is).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("europarl");
    std::fs::create_dir_all(&copy).unwrap();
    for (split, toy_split) in [("train", "train"), ("val", "valid"), ("test", "test")] {
        for lang in ["de", "en"] {
            std::fs::copy(
                toy(&format!("{toy_split}.{lang}")),
                copy.join(format!("{split}.{lang}.gz")),
            )
            .unwrap();
        }
    }
    let with_corpora = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(args)
            .env("NMT_CORPORA", dir.path())
            .output()
            .unwrap()
    };
    let o = with_corpora(&["corpus", "fetch", "europarl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("europarl is in"));
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let o = with_corpora(&[
        "train",
        "--corpus",
        "europarl",
        "--pair",
        "de-en",
        "--out",
        run,
        "--layers",
        "1",
        "--hidden",
        "16",
        "--emb",
        "16",
        "--vocab-size",
        "300",
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // eval's default split is the corpus's test split.
    let o = with_corpora(&[
        "eval", "--model", run, "--corpus", "europarl", "--pair", "de-en", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let test_lines = std::fs::read_to_string(toy("test.en"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        report["sentences"].as_u64(),
        Some(test_lines as u64),
        "{report}"
    );
}

#[test]
fn flag_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (de, en) = (toy("train.de"), toy("train.en"));
    let (de, en) = (de.to_str().unwrap(), en.to_str().unwrap());
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let o = nmt(&[
        "train",
        "--src-file",
        de,
        "--tgt-file",
        en,
        "--out",
        out,
        "--valid-src-file",
        de,
    ]);
    assert_clean_failure(&o, &["give both --valid-src-file and --valid-tgt-file"]);
    let o = nmt(&["train", "--src-file", de, "--tgt-file", en]);
    assert_clean_failure(&o, &["give --out DIR"]);
    let o = nmt(&["train", "--out", out]);
    assert_clean_failure(
        &o,
        &["give --src-file and --tgt-file, or --corpus multi30k"],
    );
    let o = nmt(&[
        "eval", "--model", out, "--corpus", "multi30k", "--split", "dev",
    ]);
    assert_clean_failure(&o, &["unknown split `dev`", "test_2016_flickr"]);
    let o = nmt(&["bench", "train", "--steps", "0"]);
    assert_clean_failure(&o, &["--steps >= 1"]);
    // core-to-core times no model, but zero rounds is the same mistake.
    let o = nmt(&["bench", "core-to-core", "--steps", "0"]);
    assert_clean_failure(&o, &["--steps >= 1"]);
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "layers = [1, 2]\n").unwrap();
    let o = nmt(&["train", "--config", cfg.to_str().unwrap(), "--out", out]);
    assert_clean_failure(
        &o,
        &["bad.toml", "`layers` must be a string, number or boolean"],
    );
    std::fs::write(&cfg, "layers = \n").unwrap();
    let o = nmt(&["train", "--config", cfg.to_str().unwrap(), "--out", out]);
    assert_clean_failure(&o, &["bad.toml is not valid TOML"]);
    let o = nmt(&[
        "train",
        "--config",
        dir.path().join("none.toml").to_str().unwrap(),
        "--out",
        out,
    ]);
    assert_clean_failure(&o, &["cannot read config file", "none.toml"]);
}
