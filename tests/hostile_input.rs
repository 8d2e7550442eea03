//! The catalogue of hostile inputs (docs/reliability.md): each case gives a message naming
//! the file, line, tensor or flag, the exit status of its class (1 runtime, 2 usage,
//! 3 input data, 4 checkpoint), no panic, and leaves the user's files as they were.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use common::toy;

fn nmt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmt"));
    c.env_remove("NMT_CORPORA");
    c
}

fn run(args: &[&str]) -> Output {
    nmt().args(args).output().unwrap()
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = nmt()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Fails with exit status `code`, no panic, and every needle in the message.
fn fails(o: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status, expecting {needles:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains a tiny model (1 layer, hidden 16) on `src`/`tgt` into `out`.
fn train(src: &Path, tgt: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--src-file",
        s(src),
        "--tgt-file",
        s(tgt),
        "--out",
        s(out),
        "--vocab-size",
        "200",
        "--layers",
        "1",
        "--hidden",
        "16",
        "--emb",
        "16",
        "--max-steps",
        "2",
        "--quiet",
    ];
    args.extend(extra);
    run(&args)
}

/// `nmt train --resume` of run `m`, on to step 4.
fn resume_args(m: &Path) -> [&str; 7] {
    [
        "train",
        "--out",
        s(m),
        "--resume",
        "--max-steps",
        "4",
        "--quiet",
    ]
}

fn toy_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    ok(&train(&toy("train.de"), &toy("train.en"), &m, &[]));
    m
}

/// Every file under `dir` with its bytes, to prove a failure changed nothing.
fn snapshot(dir: &Path) -> HashMap<PathBuf, Vec<u8>> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else if !p.ends_with("train.lock") {
            // (The lock holds the pid of the last run that took it.)
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn corpus_files() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let out = d.join("run");
    let three = write(d, "three.txt", b"a\nb\nc\n");
    let two = write(d, "two.txt", b"a\nb\n");
    fails(
        &train(&three, &two, &out, &[]),
        3,
        &["three.txt has 3 lines", "two.txt has 2"],
    );
    let bad = write(d, "bad.txt", b"gut\nnicht \xff gut\n");
    fails(
        &train(&bad, &two, &out, &[]),
        3,
        &["bad.txt:2", "not valid UTF-8", "iconv"],
    );
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let bin = write(d, "binary.dat", &binary);
    fails(&train(&bin, &bin, &out, &[]), 3, &["binary.dat:", "UTF-8"]);
    // A gzip file cut in half.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(enc, "Satz Nummer {i} mit ein paar Wörtern").unwrap();
    }
    let gz = enc.finish().unwrap();
    let cut = write(d, "cut.de.gz", &gz[..gz.len() / 2]);
    fails(
        &train(&cut, &cut, &out, &[]),
        3,
        &["cut.de.gz:", "gzip data is damaged or cut short"],
    );
    fails(&train(d, d, &out, &[]), 3, &["is a folder"]);
    fails(
        &train(&d.join("missing.de"), &two, &out, &[]),
        3,
        &["missing.de", "exists"],
    );
    // Every pair empty on a side or too long: nothing to train on.
    let long = "wort ".repeat(20_000);
    let s1 = write(d, "s1.txt", format!("\nhallo\n{long}\n").as_bytes());
    let t1 = write(d, "t1.txt", b"x\n\nhello\n");
    fails(
        &train(&s1, &t1, &out, &[]),
        3,
        &["no usable sentence pair", "s1.txt"],
    );
    assert!(!out.join("model.safetensors").exists());
}

/// CRLF line ends and a byte-order mark are read as plain lines; empty and 100,000-character
/// lines are dropped and counted.
#[test]
fn corpus_quirks_are_handled_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let src = std::fs::read_to_string(toy("train.de")).unwrap();
    let tgt = std::fs::read_to_string(toy("train.en")).unwrap();
    let crlf = |t: &str| format!("\u{feff}{}", t.replace('\n', "\r\n"));
    let long = "a".repeat(100_000);
    let s_path = write(
        d,
        "s.de",
        format!("{}\r\n{long}\r\n", crlf(&src)).as_bytes(),
    );
    let t_path = write(
        d,
        "t.en",
        format!("{}leer\r\nlang\r\n", crlf(&tgt)).as_bytes(),
    );
    let out = d.join("run");
    let o = train(&s_path, &t_path, &out, &["--max-len", "50"]);
    let text = ok(&o);
    assert!(text.contains("(2 skipped)"), "{text}");
    let vocab = std::fs::read_to_string(out.join("src_tokenizer.json")).unwrap();
    assert!(!vocab.contains("\\r") && !vocab.contains("\\ufeff") && !vocab.contains('\u{feff}'));
}

#[test]
fn output_folders_that_cannot_be_written() {
    let d = tempfile::tempdir().unwrap();
    let file = write(d.path(), "a-file", b"x");
    fails(
        &train(&toy("train.de"), &toy("train.en"), &file.join("run"), &[]),
        1,
        &["cannot write", "a-file"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// A full disk while the model is saved: the error names the file, the previous model stays
/// whole, and no temporary file is left behind.
#[test]
fn disk_full_during_a_save_keeps_the_previous_model() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let before = std::fs::read(m.join("model.safetensors")).unwrap();
    let o = nmt()
        .args(resume_args(&m))
        .env("NMT_TEST_DISK_FULL", "model.safetensors")
        .output()
        .unwrap();
    fails(&o, 1, &["model.safetensors", "No space left on device"]);
    assert_eq!(std::fs::read(m.join("model.safetensors")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A model folder damaged in each way we know: named, exit 4, and the folder untouched.
#[test]
fn damaged_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let weights = m.join("model.safetensors");
    let good: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let good_bytes = std::fs::read(&weights).unwrap();
    let translate = || run(&["translate", "--model", s(&m), "Hallo."]);
    let with = |edit: &dyn Fn(&mut HashMap<String, Tensor>)| {
        let mut t = good.clone();
        edit(&mut t);
        candle_core::safetensors::save(&t, &weights).unwrap();
        let before = snapshot(&m);
        let o = translate();
        assert_eq!(before, snapshot(&m), "the model folder changed");
        o
    };
    let poison = |v: f32| {
        move |t: &mut HashMap<String, Tensor>| {
            let w = &t["decoder.weight_hh_l0"];
            let mut x = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            x[5] = v;
            let p = Tensor::from_vec(x, w.dims(), &Device::Cpu).unwrap();
            t.insert("decoder.weight_hh_l0".into(), p);
        }
    };
    fails(
        &with(&poison(f32::NAN)),
        4,
        &[
            "model.safetensors",
            "`decoder.weight_hh_l0` holds NaN",
            "flat index 5",
        ],
    );
    fails(
        &with(&poison(f32::INFINITY)),
        4,
        &["`decoder.weight_hh_l0` holds an infinity"],
    );
    fails(
        &with(&|t| {
            let w = t["proj.bias"].to_dtype(DType::U8).unwrap();
            t.insert("proj.bias".into(), w);
        }),
        4,
        &["`proj.bias` has dtype U8"],
    );
    fails(
        &with(&|t| {
            t.insert(
                "attention.weight".into(),
                Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
            );
        }),
        4,
        &["`attention.weight` is not part of a model with this config.json"],
    );
    fails(
        &with(&|t| {
            t.remove("src_emb.weight");
        }),
        4,
        &["`src_emb.weight` is missing"],
    );
    std::fs::write(&weights, &good_bytes[..good_bytes.len() / 2]).unwrap();
    fails(
        &translate(),
        4,
        &["model.safetensors", "cannot read the weights"],
    );
    std::fs::write(&weights, &good_bytes).unwrap();

    let cfg_path = m.join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, &cfg[..cfg.len() / 2]).unwrap();
    fails(&translate(), 4, &["config.json"]);
    std::fs::write(
        &cfg_path,
        cfg.replace("\"format_version\": 1", "\"format_version\": 7"),
    )
    .unwrap();
    fails(&translate(), 4, &["config.json", "format_version 7"]);
    let hidden = cfg.replace("\"hidden\": 16", "\"hidden\": 1000000");
    assert_ne!(hidden, cfg);
    std::fs::write(&cfg_path, hidden).unwrap();
    fails(&translate(), 4, &["config.json", "GiB of weights"]);
    std::fs::write(&cfg_path, cfg.replace("\"eos_id\": 2", "\"eos_id\": 99999")).unwrap();
    fails(
        &translate(),
        4,
        &["eos_id 99999 is outside the vocabularies"],
    );
    std::fs::write(&cfg_path, &cfg).unwrap();

    // Another model's tokenizer (another vocabulary size).
    let other = d.path().join("other");
    ok(&train(
        &toy("train.de"),
        &toy("train.en"),
        &other,
        &["--vocab-size", "400"],
    ));
    let tok = m.join("tgt_tokenizer.json");
    let good_tok = std::fs::read(&tok).unwrap();
    std::fs::copy(other.join("tgt_tokenizer.json"), &tok).unwrap();
    fails(
        &translate(),
        4,
        &["target tokenizer has", "config.json says"],
    );
    std::fs::write(&tok, b"{ not json").unwrap();
    fails(&translate(), 4, &["tgt_tokenizer.json"]);
    std::fs::write(&tok, &good_tok).unwrap();
    ok(&translate());
}

/// Resuming from a damaged training checkpoint: named, exit 4, nothing changed.
#[test]
fn damaged_training_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("model");
    ok(&train(
        &toy("train.de"),
        &toy("train.en"),
        &m,
        &["--optimizer", "adam"],
    ));
    let ck = std::fs::read_dir(m.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let resume = || run(&resume_args(&m));
    let state = ck.join("trainer_state.json");
    let good_state = std::fs::read(&state).unwrap();
    std::fs::write(&state, b"{\"step\": ").unwrap();
    let before = snapshot(&m);
    fails(
        &resume(),
        4,
        &["trainer_state.json", "not a valid trainer state"],
    );
    assert_eq!(before, snapshot(&m));
    std::fs::write(&state, &good_state).unwrap();

    let optim = ck.join("optimizer.safetensors");
    let mut t: HashMap<String, Tensor> =
        candle_core::safetensors::load(&optim, &Device::Cpu).unwrap();
    t.insert(
        "t".into(),
        Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&t, &optim).unwrap();
    let before = snapshot(&m);
    fails(&resume(), 4, &["optimizer.safetensors", "step count `t`"]);
    assert_eq!(before, snapshot(&m));
    let name = t.keys().find(|k| k.starts_with("m.")).unwrap().clone();
    t.insert(
        name.clone(),
        Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    t.insert("t".into(), Tensor::new(&[2f32], &Device::Cpu).unwrap());
    candle_core::safetensors::save(&t, &optim).unwrap();
    fails(
        &resume(),
        4,
        &["optimizer.safetensors", &format!("`{name}`")],
    );
}

#[test]
fn flags_out_of_range() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let m = s(&m);
    let tr = |extra: &[&str]| {
        let mut a = vec!["translate", "--model", m];
        a.extend(extra);
        a.push("Hallo.");
        run(&a)
    };
    fails(&tr(&["--beam", "0"]), 2, &["beam must be at least 1"]);
    fails(
        &tr(&["--beam", "2", "--n-best", "3"]),
        2,
        &["n-best must be between 1 and the beam width (2)"],
    );
    fails(
        &tr(&["--max-len-ratio", "1e30"]),
        2,
        &["--max-len-ratio", "at most 100"],
    );
    fails(&tr(&["--max-len-ratio", "0"]), 2, &["--max-len-ratio"]);
    fails(&tr(&["--threads", "100000"]), 2, &["--threads 100000"]);
    ok(&tr(&["--threads", "0"]));
    #[cfg(not(feature = "cuda"))]
    for gpu in ["cuda", "cuda:1"] {
        fails(
            &tr(&["--device", gpu]),
            2,
            &["built without CUDA", "make build-cuda", "--device cpu"],
        );
    }
    fails(
        &tr(&["--device", "cuda:first"]),
        2,
        &["unknown device `cuda:first`", "cuda:N"],
    );
    fails(&tr(&["--device", "gpu"]), 2, &["unknown device `gpu`"]);
    fails(&tr(&["--beam", "many"]), 2, &["--beam"]);
    let out = d.path().join("run");
    let (de, en) = (toy("train.de"), toy("train.en"));
    for (flag, value, needle) in [
        ("--layers", "0", "layers must be between 1 and 8"),
        ("--layers", "1000", "layers must be between 1 and 8"),
        ("--hidden", "1000000", "GiB of weights"),
        ("--hidden", "0", "hidden must be at least 1"),
        ("--batch-tokens", "0", "batch_tokens 0"),
        ("--max-len", "0", "max_len must be at least 1"),
        ("--lr", "0", "lr must be a positive number"),
        ("--dropout", "1.5", "dropout must be in [0, 1)"),
    ] {
        fails(&train(&de, &en, &out, &[flag, value]), 2, &[needle]);
    }
    assert!(!out.join("model.safetensors").exists());
}

/// Text no model was trained on: whitespace only, NUL, right-to-left, combining characters,
/// emoji and invalid UTF-8 on stdin. One output line per input line, or a named error.
#[test]
fn hostile_text_to_translate() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let input = "   \n\0\nשלום עולם\nمرحبا\ne\u{301}\u{301}\u{301}\n😀🐕‍🦺\n\u{202e}abc\n";
    let o = run_stdin(&["translate", "--model", s(&m)], input.as_bytes());
    let out = ok(&o);
    assert_eq!(out.lines().count(), input.lines().count(), "{out}");
    assert_eq!(
        out.lines().next(),
        Some(""),
        "whitespace gives an empty line"
    );
    let o = run_stdin(&["translate", "--model", s(&m)], b"gut\nschlecht \xc3\n");
    fails(&o, 3, &["<stdin>:2", "not valid UTF-8"]);
}

/// A 10,000-token sentence translates in bounded time, its output bounded by the length
/// limit (ratio 2: at most 2 x source + 1 tokens).
#[test]
fn very_long_sentence_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let long = "der Hund läuft ".repeat(3_400);
    let started = Instant::now();
    let out = ok(&run(&["translate", "--model", s(&m), "--beam", "2", &long]));
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(out.split_whitespace().count() <= 2 * 3 * 3_400 * 4 + 1);
}

/// A second training on a folder in use is refused, naming the holder, and changes nothing.
#[test]
fn two_trainings_on_one_folder() {
    let d = tempfile::tempdir().unwrap();
    let m = toy_model(d.path());
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(m.join("train.lock"))
        .unwrap();
    lock.lock().unwrap();
    let before = snapshot(&m);
    let o = run(&resume_args(&m));
    fails(&o, 2, &["is in use", "train.lock", "another --out"]);
    let o = train(&toy("train.de"), &toy("train.en"), &m, &["--overwrite"]);
    fails(&o, 2, &["is in use"]);
    assert_eq!(before, snapshot(&m));
    drop(lock);
    ok(&run(&resume_args(&m)));
}

#[test]
fn usage_mistakes_exit_2() {
    fails(
        &run(&["train", "--out", "/nonexistent/x"]),
        2,
        &["give --src-file and --tgt-file"],
    );
    fails(&run(&["translate"]), 2, &["--model"]);
    fails(&run(&["frobnicate"]), 2, &["frobnicate"]);
    let d = tempfile::tempdir().unwrap();
    let hyp = write(d.path(), "hyp.txt", b"a\n");
    fails(&run(&["eval", "--hyp-file", s(&hyp)]), 2, &["--ref-file"]);
    let missing = d.path().join("none.toml");
    fails(
        &run(&[
            "train",
            "--config",
            s(&missing),
            "--out",
            s(&d.path().join("run")),
        ]),
        2,
        &["cannot read config file", "none.toml", "--config"],
    );
    // An output file that exists is not replaced unasked.
    let m = toy_model(d.path());
    fails(
        &run(&["translate", "--model", s(&m), "--output", s(&hyp), "Hallo."]),
        2,
        &["hyp.txt already exists", "--overwrite"],
    );
    assert_eq!(std::fs::read(&hyp).unwrap(), b"a\n");
}
