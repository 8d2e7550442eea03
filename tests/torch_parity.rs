//! PyTorch weight parity: a tiny nn.Embedding/nn.LSTM/nn.Linear encoder-decoder saved by
//! PyTorch (tools/make_torch_parity_fixture.py, torch 2.15.0) loads into nmt by tensor name
//! and gives the logits PyTorch computed, to 1e-5.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use nmt::checkpoint::load_config;
use nmt::model::Seq2Seq;

#[test]
fn pytorch_weights_give_pytorch_logits() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_parity");
    let cfg = load_config(&dir).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let model = Seq2Seq::from_tensors(&cfg, &tensors).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("logits.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<Vec<u32>> { serde_json::from_value(want[key].clone()).unwrap() };
    let (src, tgt_in) = (ids("src"), ids("tgt_in"));
    // nn.LSTM reads src.flip(0): nmt's encoder takes the source in reading order.
    let reversed: Vec<u32> = src.iter().rev().flatten().copied().collect();
    let src_t = Tensor::from_vec(reversed, (src.len(), src[0].len()), &Device::Cpu).unwrap();
    let tgt_flat: Vec<u32> = tgt_in.iter().flatten().copied().collect();
    let tgt_t = Tensor::from_vec(tgt_flat, (tgt_in.len(), tgt_in[0].len()), &Device::Cpu).unwrap();
    let state = model.encode(&src_t, None).unwrap();
    let (top, _) = model.decode(&tgt_t, &state).unwrap();
    let (t, b, h) = top.dims3().unwrap();
    let logits = model.project(&top.reshape((t * b, h)).unwrap()).unwrap();
    let got = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let expected: Vec<f32> = serde_json::from_value(want["logits"].clone()).unwrap();
    assert_eq!(got.len(), expected.len());
    let max_diff = got
        .iter()
        .zip(&expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("largest |nmt - PyTorch| logit difference: {max_diff:e}");
    assert!(
        max_diff < 1e-5,
        "logits differ from PyTorch's by {max_diff}"
    );
}
