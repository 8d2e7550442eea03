//! The model's named tensors: names and shapes (PyTorch's, so `nn.LSTM`/`nn.Embedding`/
//! `nn.Linear` weights load by name), seeded initialisation, and checks on loaded tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::{Attention, ModelConfig};
use crate::error::Result;
use crate::rng::Rng;

/// Every tensor of a model with `cfg`, in a fixed order, with its shape.
pub fn param_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden;
    let mut out = vec![
        ("src_emb.weight".to_string(), vec![cfg.src_vocab, cfg.emb]),
        ("tgt_emb.weight".to_string(), vec![cfg.tgt_vocab, cfg.emb]),
    ];
    // Input feeding: decoder layer 0 reads [embedding | previous attentional vector].
    let feed = if cfg.attention.is_on() { h } else { 0 };
    for side in ["encoder", "decoder"] {
        for k in 0..cfg.layers {
            let input = match (k, side) {
                (0, "decoder") => cfg.emb + feed,
                (0, _) => cfg.emb,
                _ => h,
            };
            out.push((format!("{side}.weight_ih_l{k}"), vec![4 * h, input]));
            out.push((format!("{side}.weight_hh_l{k}"), vec![4 * h, h]));
            out.push((format!("{side}.bias_ih_l{k}"), vec![4 * h]));
            out.push((format!("{side}.bias_hh_l{k}"), vec![4 * h]));
        }
    }
    out.push(("proj.weight".to_string(), vec![cfg.tgt_vocab, h]));
    out.push(("proj.bias".to_string(), vec![cfg.tgt_vocab]));
    // Last, so that a model without attention draws the same initial weights as before.
    if cfg.attention == Attention::General {
        out.push((ATTN_IN.to_string(), vec![h, h]));
    }
    if cfg.attention.is_on() {
        out.push((ATTN_OUT.to_string(), vec![h, 2 * h]));
    }
    out
}

/// Luong's `W_a (H, H)` of `general` attention (OpenNMT's `linear_in`, no bias).
pub const ATTN_IN: &str = "attn.linear_in.weight";
/// `W_c (H, 2H)`: the attentional vector is `tanh(W_c [context | h_t])` (OpenNMT's
/// `linear_out`, no bias).
pub const ATTN_OUT: &str = "attn.linear_out.weight";

/// Number of scalar weights of a model with `cfg`.
pub fn param_count(cfg: &ModelConfig) -> usize {
    param_shapes(cfg)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum()
}

/// Sutskever et al.: every weight uniform in [-0.08, 0.08], drawn from the run's seed in
/// `param_shapes` order, so the same seed gives the same weights on every device.
pub fn init_uniform(
    cfg: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = Rng::new(seed);
    let mut out = HashMap::new();
    for (name, shape) in param_shapes(cfg) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.uniform(-0.08, 0.08)).collect();
        out.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Ok(out)
}

/// Sets the forget-gate slice (PyTorch gate order i, f, g, o) of every LSTM layer's biases
/// so that b_ih + b_hh = `value` there: b_ih gets `value`, b_hh zero.
pub fn set_forget_bias(
    cfg: &ModelConfig,
    tensors: &mut HashMap<String, Tensor>,
    value: f32,
) -> Result<()> {
    let h = cfg.hidden;
    for side in ["encoder", "decoder"] {
        for k in 0..cfg.layers {
            for (kind, v) in [("ih", value), ("hh", 0.0)] {
                let name = format!("{side}.bias_{kind}_l{k}");
                let mut b = tensors[&name].to_vec1::<f32>()?;
                b[h..2 * h].fill(v);
                let t = Tensor::from_vec(b, 4 * h, tensors[&name].device())?;
                tensors.insert(name, t);
            }
        }
    }
    Ok(())
}

/// Checks that `tensors` holds exactly what a model with `cfg` needs, as f32-convertible
/// floats of the right shapes. The message names the first offending tensor.
pub fn check(
    cfg: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
) -> std::result::Result<(), String> {
    for (name, shape) in param_shapes(cfg) {
        let Some(t) = tensors.get(&name) else {
            return Err(format!(
                "tensor `{name}` is missing (config.json asks for {} layers; the weights file does not match it)",
                cfg.layers
            ));
        };
        if t.dims() != shape.as_slice() {
            return Err(format!(
                "tensor `{name}` has shape {:?}, but config.json implies {:?}",
                t.dims(),
                shape
            ));
        }
        if !matches!(
            t.dtype(),
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            return Err(format!(
                "tensor `{name}` has dtype {:?}; expected floats",
                t.dtype()
            ));
        }
    }
    let known: std::collections::HashSet<String> =
        param_shapes(cfg).into_iter().map(|(n, _)| n).collect();
    let mut extra: Vec<&String> = tensors.keys().filter(|n| !known.contains(*n)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(format!(
            "tensor `{name}` is not part of a model with this config.json ({} such tensor(s); \
             was the file written for another architecture or edited by hand?)",
            extra.len()
        ));
    }
    Ok(())
}

/// Refuses tensors holding NaN or an infinity (a diverged or damaged model): search would
/// otherwise score every hypothesis NaN and translate nothing. Names the first one, in name
/// order, with the position of its first bad value.
pub fn check_finite(tensors: &HashMap<String, Tensor>) -> std::result::Result<(), String> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let values = tensors[name]
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("tensor `{name}` cannot be read as floats: {e}"))?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let what = if values[i].is_nan() {
                "NaN"
            } else {
                "an infinity"
            };
            return Err(format!(
                "tensor `{name}` holds {what} (at flat index {i}): the model diverged or the \
                 file is damaged; use an earlier checkpoint (DIR/checkpoints/step-N/)"
            ));
        }
    }
    Ok(())
}
