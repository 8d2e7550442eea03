//! The LSTM stacks of the CPU training step: each layer's forward pass through the fused
//! layer op, kept on a tape for its backward pass.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::multiply;
use crate::error::Result;
use crate::kernels::scratch;
use crate::model::dropout::Dropout;
use crate::model::lstm::fused_layer::{Activations, LstmLayerOp};
use crate::model::lstm::weights::Weights;
use crate::model::lstm::LstmLayer;
use crate::optim::Gradient;
use crate::tensor_data::storage_f32;

/// What one LSTM layer's backward pass needs from the forward pass.
pub(super) struct LayerTape {
    pub(super) op: LstmLayerOp,
    /// The input the layer read, `(T, B, I)`, after dropout; empty above the first layer
    /// when there was no dropout (it read the h sequence below: `layer_input`).
    pub(super) x: Vec<f32>,
    /// `[h0 | c0]`, `(2, B, H)`.
    hc0: Vec<f32>,
    /// Every step's h, then the last c (the op's output).
    pub(super) out: Vec<f32>,
    act: Activations,
    /// The dropout factors the input was multiplied by.
    in_mask: Option<Vec<f32>>,
}

impl Drop for LayerTape {
    /// The layer's large buffers go back for the next step's forward (`scratch`).
    fn drop(&mut self) {
        for v in [
            std::mem::take(&mut self.out),
            std::mem::take(&mut self.act.gates),
            std::mem::take(&mut self.act.cs),
        ] {
            scratch::give(v);
        }
    }
}

/// Runs a stack of layers over `x (T, B, I)` from `init` (each layer's `[h0 | c0]`, and
/// whether the backward pass needs their gradient), with dropout between layers as
/// `StackedLstm::forward` draws it. `shape`: steps, batch and the step mask.
pub(super) fn run_stack(
    layers: &[LstmLayer],
    mut x: Vec<f32>,
    mut in_mask: Option<Vec<f32>>,
    (steps, batch, mask): (usize, usize, Option<Arc<[f32]>>),
    (init, init_grad): (&[Vec<f32>], bool),
    dropout: &mut Option<&mut Dropout>,
) -> Result<Vec<LayerTape>> {
    let mut tapes: Vec<LayerTape> = Vec::with_capacity(layers.len());
    for (k, layer) in layers.iter().enumerate() {
        if let Some(below) = tapes.last() {
            // Without dropout the layer reads the h sequence below where it lies (a copy
            // by this thread is a pass over it and leaves it in this core's cache).
            let hs = &below.out[..steps * batch * below.op.hidden];
            in_mask = dropout.as_deref_mut().and_then(|d| d.mask(hs.len()));
            x = match &in_mask {
                Some(m) => {
                    let mut dropped = hs.to_vec();
                    multiply(&mut dropped, m);
                    dropped
                }
                None => Vec::new(),
            };
        }
        let mut op = LstmLayerOp::new(steps, batch, layer.hidden(), mask.clone());
        op.initial_state_grad = init_grad;
        let input = layer_input(&tapes, k, &x, steps * batch);
        let (out, act) = with_weights(layer, |w| op.forward(input, w, &init[k]))?;
        tapes.push(LayerTape {
            op,
            x: std::mem::take(&mut x),
            hc0: init[k].clone(),
            out,
            act,
            in_mask: in_mask.take(),
        });
    }
    Ok(tapes)
}

/// What layer `k` of a stack read, given its own copy `x` (`rows` = steps x batch): `x`, or
/// for a layer above the first with no copy (no dropout), the h sequence of the layer below.
pub(super) fn layer_input<'a>(
    below: &'a [LayerTape],
    k: usize,
    x: &'a [f32],
    rows: usize,
) -> &'a [f32] {
    match k.checked_sub(1).map(|j| &below[j]) {
        Some(under) if x.is_empty() => &under.out[..rows * under.op.hidden],
        _ => x,
    }
}

/// One layer's backward pass: its weight gradients go into `grads` under PyTorch's names;
/// returns the gradient of its input (through its dropout mask) and of `[h0 | c0]`.
pub(super) fn layer_backward(
    tape: &LayerTape,
    input: &[f32],
    d_out: &[f32],
    layer: &LstmLayer,
    side: &str,
    k: usize,
    grads: &mut HashMap<String, Gradient>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let g = with_weights(layer, |w| {
        let op = &tape.op;
        op.backward(input, w, &tape.hc0, &tape.out, &tape.act, d_out)
    })?;
    let d_b = Tensor::from_vec(g.b, layer.bias_ih.shape(), &Device::Cpu)?;
    grads.insert(
        format!("{side}.weight_ih_l{k}"),
        Gradient::dense_like(g.w_ih, &layer.weight_ih)?,
    );
    grads.insert(
        format!("{side}.weight_hh_l{k}"),
        Gradient::dense_like(g.w_hh, &layer.weight_hh)?,
    );
    // b_ih and b_hh enter as their sum: both get the same gradient.
    grads.insert(format!("{side}.bias_hh_l{k}"), Gradient::Dense(d_b.clone()));
    grads.insert(format!("{side}.bias_ih_l{k}"), Gradient::Dense(d_b));
    let mut d_x = g.x;
    if let Some(mask) = &tape.in_mask {
        multiply(&mut d_x, mask);
    }
    Ok((d_x, g.hc0))
}

/// Runs `f` on the layer's parameters as the LSTM op reads them (their storage as it is,
/// and `b_ih + b_hh`).
fn with_weights<R>(layer: &LstmLayer, f: impl FnOnce(&Weights) -> R) -> Result<R> {
    let (s1, l1) = layer.weight_ih.storage_and_layout();
    let (s2, l2) = layer.weight_hh.storage_and_layout();
    let (s3, l3) = layer.bias_ih.storage_and_layout();
    let (s4, l4) = layer.bias_hh.storage_and_layout();
    let b_ih = storage_f32(&s3, l3, "bias_ih")?;
    let b_hh = storage_f32(&s4, l4, "bias_hh")?;
    let b: Vec<f32> = b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect();
    let w = Weights::of_parts(
        storage_f32(&s1, l1, "weight_ih")?,
        storage_f32(&s2, l2, "weight_hh")?,
        b,
    );
    Ok(f(&w))
}
