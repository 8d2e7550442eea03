//! `--precision`: bf16 products on the tensor path (the one CUDA trains on; run here through
//! its CPU side) give the f32 model's loss and gradients to bf16's accuracy while the weights
//! and gradients stay f32; off CUDA, anything but f32 is refused before a run starts.

mod common;

use std::process::Command;

use candle_core::{DType, Device, Tensor};
use common::{small_cfg, text, toy_train_args, trainable_model};
use nmt::data::batch::{Batch, Example};
use nmt::model::lstm::LstmPath;
use nmt::model::precision::Precision;
use nmt::rng::Rng;

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
    dot / (norm(&a) * norm(&b)).max(1e-30)
}

#[test]
fn bf16_products_track_f32_and_keep_f32_weights() {
    let cfg = small_cfg(2, 40, 16, 24);
    let (model, vars) = trainable_model(&cfg, 5);
    let mut rng = Rng::new(5);
    let examples: Vec<Example> = (0..6)
        .map(|k| Example {
            src: (0..3 + k % 4).map(|_| 4 + rng.below(36) as u32).collect(),
            tgt: (0..2 + k % 5).map(|_| 4 + rng.below(36) as u32).collect(),
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let batch = Batch::new(&refs, &cfg, &Device::Cpu).unwrap();
    let run = |precision: Precision| {
        let m = model
            .clone()
            .with_path(LstmPath::Cell)
            .with_precision(precision);
        let (nll, _) = m.forward_teacher(&batch).unwrap();
        let grads = nll.backward().unwrap();
        (nll.to_scalar::<f32>().unwrap() as f64, grads)
    };
    let (nll32, g32) = run(Precision::F32);
    let (nll16, g16) = run(Precision::Bf16);
    let rel = (nll16 - nll32).abs() / nll32;
    // bf16 keeps 8 bits of mantissa: the loss moves, but by well under a percent.
    assert!(
        rel > 0.0,
        "bf16 gave the f32 loss bit for bit: the products were not cast"
    );
    assert!(rel < 1e-2, "bf16 loss {nll16} vs f32 {nll32}");
    for (name, v) in &vars {
        assert_eq!(
            v.as_tensor().dtype(),
            DType::F32,
            "{name}: master weight not f32"
        );
        let (a, b) = (g16.get(v.as_tensor()), g32.get(v.as_tensor()));
        let (a, b) = (
            a.unwrap_or_else(|| panic!("{name}: no bf16 gradient")),
            b.unwrap(),
        );
        assert_eq!(a.dtype(), DType::F32, "{name}: gradient not f32");
        assert!(
            cosine(a, b) > 0.99,
            "{name}: gradient direction {}",
            cosine(a, b)
        );
    }
    // tf32 is a cuBLAS mode; on the CPU its products are f32's.
    assert_eq!(run(Precision::Tf32).0, nll32);
}

#[test]
fn reduced_precision_off_cuda_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for precision in ["bf16", "tf32"] {
        let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(toy_train_args(&out, false, &["--precision", precision]))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("--precision {precision}")) && err.contains("CUDA only"),
            "{err}"
        );
        assert!(!out.exists(), "the run folder was created");
        let o = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["bench", "train", "--steps", "1", "--precision", precision])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    }
}
