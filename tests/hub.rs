//! Hub habits: models from a Hub cache laid out as the Hub does (offline), self-describing run
//! folders (weights metadata, model card, `nmt info`), completions and `--version`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{ok, toy};

fn nmt(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nmt"));
    c.args(args)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn err(o: Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn train(dir: &Path) {
    let args = common::toy_train_args(
        dir,
        true,
        &["--hidden", "64", "--emb", "32", "--epochs", "4"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(nmt(&args, &[]));
}

const FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "src_tokenizer.json",
    "tgt_tokenizer.json",
];

#[test]
fn translate_through_a_hub_repo_id_from_the_offline_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run);
    // The Hub cache layout: models--org--name/refs/main -> commit, snapshots/<commit>/<files>.
    let cache = tmp.path().join("hf").join("hub");
    let repo = cache.join("models--nmt-test--toy-de-en");
    let snap = repo.join("snapshots").join("0123456789abcdef");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123456789abcdef").unwrap();
    for f in FILES {
        std::fs::copy(run.join(f), snap.join(f)).unwrap();
    }
    let input = toy("test.de");
    let local = ok(nmt(
        &[
            "translate",
            "--model",
            run.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        &[],
    ));
    let args = |model: &str| {
        vec![
            "translate",
            "--model",
            model,
            "--offline",
            "--input",
            input.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run_args = |a: Vec<String>, env: &[(&str, &Path)]| {
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        nmt(&a, env)
    };
    assert_eq!(
        ok(run_args(
            args("nmt-test/toy-de-en"),
            &[("HF_HUB_CACHE", &cache)]
        )),
        local
    );
    assert_eq!(
        ok(run_args(
            args("nmt-test/toy-de-en@0123456789abcdef"),
            &[("HF_HUB_CACHE", &cache)]
        )),
        local
    );
    // HF_HOME/hub is the cache when HF_HUB_CACHE is unset; HF_HUB_OFFLINE=1 means offline.
    let hf_home = tmp.path().join("hf");
    let o = nmt(
        &[
            "translate",
            "--model",
            "nmt-test/toy-de-en",
            "--input",
            input.to_str().unwrap(),
        ],
        &[("HF_HOME", &hf_home), ("HF_HUB_OFFLINE", Path::new("1"))],
    );
    assert_eq!(ok(o), local);
    // nmt info works on both.
    let info = ok(nmt(
        &["info", "nmt-test/toy-de-en", "--offline"],
        &[("HF_HUB_CACHE", &cache)],
    ));
    assert!(
        info.contains("parameters: ") && info.contains("vocabulary: "),
        "{info}"
    );

    // A file missing from the cache is named, with the cache path searched.
    std::fs::remove_file(snap.join("tgt_tokenizer.json")).unwrap();
    let e = err(run_args(
        args("nmt-test/toy-de-en"),
        &[("HF_HUB_CACHE", &cache)],
    ));
    assert!(
        e.contains("tgt_tokenizer.json")
            && e.contains("models--nmt-test--toy-de-en")
            && e.contains("offline"),
        "{e}"
    );
    let e = err(run_args(
        args("nmt-test/other"),
        &[("HF_HUB_CACHE", &cache)],
    ));
    assert!(
        e.contains("config.json of nmt-test/other@main is not in the Hub cache"),
        "{e}"
    );
}

#[test]
fn run_folders_describe_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run);
    let card = std::fs::read_to_string(run.join("README.md")).unwrap();
    for needle in [
        "language:\n- de\n- en",
        "train.de (300 lines)",
        "valid.en (30 lines)",
        "nmt train --src-file",
        "best validation: perplexity",
    ] {
        assert!(card.contains(needle), "card lacks {needle:?}:\n{card}");
    }
    let info = ok(nmt(&["info", run.to_str().unwrap()], &[]));
    assert!(
        info.contains("layers: 1 encoder + 1 decoder") && info.contains("updates: "),
        "{info}"
    );
    // An evaluation is recorded in the card.
    let (s, r) = (toy("test.de"), toy("test.en"));
    ok(nmt(
        &[
            "eval",
            "--model",
            run.to_str().unwrap(),
            "--src-file",
            s.to_str().unwrap(),
            "--ref-file",
            r.to_str().unwrap(),
        ],
        &[],
    ));
    let card = std::fs::read_to_string(run.join("README.md")).unwrap();
    assert!(
        card.contains("## Evaluations") && card.contains("test.en"),
        "{card}"
    );

    // The weights carry the config; another format version is refused by name.
    let weights = run.join("model.safetensors");
    let meta = nmt::checkpoint::weights_metadata(&weights).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&meta["nmt_config"]).unwrap();
    assert_eq!(cfg["layers"], 1);
    let tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    let mut sorted: Vec<(&String, &candle_core::Tensor)> = tensors.iter().collect();
    sorted.sort_by_key(|(k, _)| k.as_str());
    let future = HashMap::from([("nmt_format_version".to_string(), "99".to_string())]);
    safetensors::serialize_to_file(sorted, Some(future), &weights).unwrap();
    let e = err(nmt(
        &["translate", "--model", run.to_str().unwrap(), "Hallo."],
        &[],
    ));
    assert!(
        e.contains("model.safetensors") && e.contains("format version 99"),
        "{e}"
    );
}

#[test]
fn completions_and_version() {
    let bash = ok(nmt(&["completions", "bash"], &[]));
    assert!(
        bash.contains("_nmt") && bash.contains("translate"),
        "{}",
        &bash[..200.min(bash.len())]
    );
    assert!(ok(nmt(&["completions", "fish"], &[])).contains("complete -c nmt"));
    let v = ok(nmt(&["--version"], &[]));
    assert!(
        v.starts_with("nmt 0.") && v.contains("git ") && v.contains("devices: cpu"),
        "{v}"
    );
}
