//! nmt's files in Python: the tokenizers and weights load unchanged with the `tokenizers` and
//! `safetensors` packages (tools/check_nmt_run.py), and, where torch is installed, the weights
//! drive the PyTorch reference model to the same greedy translation (tools/load_in_pytorch.py).
//! The interpreter is $NMT_PYTHON or python3; .ci/run installs the two small packages.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;

fn python() -> String {
    std::env::var("NMT_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn has_modules(modules: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn toy_run(dir: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
        .args(common::toy_train_args(dir, false, &[]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn tool(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn run_folder_loads_in_python_tokenizers_and_safetensors() {
    if !has_modules("tokenizers, safetensors, numpy") {
        common::skip(
            "python_interop::run_folder_loads_in_python_tokenizers_and_safetensors",
            &format!(
                "{} lacks tokenizers/safetensors/numpy (pip install tokenizers safetensors numpy)",
                python()
            ),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    toy_run(&run);
    let sentence = "Ein kleiner Hund läuft im Schnee – „schnell“!";
    let o = Command::new(python())
        .args([&tool("check_nmt_run.py"), run.to_str().unwrap(), sentence])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let loaded = nmt::checkpoint::load(&run, &Device::Cpu).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(
        ids,
        loaded.src_tok.encode(sentence).unwrap(),
        "Python tokenizers gives other ids"
    );
    assert_eq!(v["round_trip"], true);
    assert_eq!(v["special"], serde_json::json!([0, 1, 2, 3]));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        v["config"], cfg,
        "the weights' metadata carries config.json"
    );
    let tensors = loaded.model.named_tensors();
    assert_eq!(v["shapes"].as_object().unwrap().len(), tensors.len());
    for (name, t) in &tensors {
        assert_eq!(v["shapes"][name], serde_json::json!(t.dims()), "{name}");
    }
    let bias: f64 = tensors["proj.bias"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .sum();
    assert!((v["proj_bias_sum"].as_f64().unwrap() - bias).abs() < 1e-9);
}

#[test]
fn pytorch_reference_model_translates_like_nmt() {
    if !has_modules("torch, tokenizers, safetensors") {
        common::skip(
            "python_interop::pytorch_reference_model_translates_like_nmt",
            &format!(
                "{} lacks torch (pip install torch tokenizers safetensors)",
                python()
            ),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    toy_run(&run);
    for sentence in ["Der Hund läuft im Park.", "Eine alte Frau lacht am Strand."] {
        let o = Command::new(python())
            .args([&tool("load_in_pytorch.py"), run.to_str().unwrap(), sentence])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let torch_out = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let n = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args([
                "translate",
                "--model",
                run.to_str().unwrap(),
                "--beam",
                "1",
                sentence,
            ])
            .output()
            .unwrap();
        assert_eq!(
            torch_out,
            String::from_utf8_lossy(&n.stdout).trim(),
            "{sentence}"
        );
    }
}
