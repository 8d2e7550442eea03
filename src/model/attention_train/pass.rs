//! The attention decoder inside the CPU training step (`train_step`): its weights copied out
//! of the model's tensors, the forward pass run, and its gradients put under the parameters'
//! names.

use std::collections::HashMap;

use candle_core::Tensor;

use super::{forward, multiply, AttentionTape, AttentionWeights, LayerWeights, Sizes};
use crate::error::{Error, Result};
use crate::model::attention::AttentionLayer;
use crate::model::dropout::Dropout;
use crate::model::lstm::LstmLayer;
use crate::model::params;
use crate::model::Seq2Seq;
use crate::optim::Gradient;

/// What the decoder reads: the dropped target embeddings `(T, B, E)` and their dropout
/// mask, each layer's `[h0 | c0]`, the encoder's top outputs `(S, B, H)` and the source's
/// step flags.
pub type Inputs<'a> = (
    &'a [f32],
    Option<Vec<f32>>,
    &'a [Vec<f32>],
    &'a [f32],
    Option<&'a [f32]>,
);

/// The attention decoder's forward pass and what its backward pass reads.
pub struct AttentionPass {
    pub tape: AttentionTape,
    layers: Vec<LayerWeights>,
    weights: AttentionWeights,
    /// The target embeddings' dropout mask.
    y_mask: Option<Vec<f32>>,
}

impl AttentionPass {
    /// Its gradients into `grads`; returns the gradients of the decoder's initial states,
    /// of the target embeddings, and of the encoder's top outputs.
    pub fn backward(
        &self,
        model: &Seq2Seq,
        d_top: &[f32],
        grads: &mut HashMap<String, Gradient>,
    ) -> Result<DecoderGrads> {
        let g = self.tape.backward(&self.layers, &self.weights, d_top);
        for (k, ((d_ih, d_hh, d_b), layer)) in
            g.layers.into_iter().zip(&model.decoder.layers).enumerate()
        {
            grads.insert(
                format!("decoder.weight_ih_l{k}"),
                Gradient::dense_like(d_ih, &layer.weight_ih)?,
            );
            grads.insert(
                format!("decoder.weight_hh_l{k}"),
                Gradient::dense_like(d_hh, &layer.weight_hh)?,
            );
            grads.insert(
                format!("decoder.bias_ih_l{k}"),
                Gradient::dense_like(d_b.clone(), &layer.bias_ih)?,
            );
            grads.insert(
                format!("decoder.bias_hh_l{k}"),
                Gradient::dense_like(d_b, &layer.bias_hh)?,
            );
        }
        let att = model.attention.as_ref().ok_or_else(|| {
            Error::Training("an attention pass for a model without attention".into())
        })?;
        if let (Some(d), Some(w)) = (g.w_in, &att.w_in) {
            grads.insert(params::ATTN_IN.into(), Gradient::dense_like(d, w)?);
        }
        grads.insert(
            params::ATTN_OUT.into(),
            Gradient::dense_like(g.w_out, &att.w_out)?,
        );
        let mut d_y = g.y;
        if let Some(m) = &self.y_mask {
            multiply(&mut d_y, m);
        }
        Ok((g.init, d_y, g.memory))
    }
}

/// Gradients of the decoder's initial states (per layer `[h0 | c0]`), of its embedded
/// inputs `(T, B, E)`, and of the encoder's top outputs `(S, B, H)`.
type DecoderGrads = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>);

/// A decoder layer's weights copied out for the attention decoder.
fn layer_weights(layer: &LstmLayer) -> Result<LayerWeights> {
    let b_ih = flat(&layer.bias_ih)?;
    let b_hh = flat(&layer.bias_hh)?;
    Ok(LayerWeights {
        w_ih: flat(&layer.weight_ih)?,
        w_hh: flat(&layer.weight_hh)?,
        bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
    })
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

impl AttentionPass {
    /// The forward pass of `model`'s attention decoder.
    pub fn run(
        model: &Seq2Seq,
        att: &AttentionLayer,
        sizes: Sizes,
        (y, y_mask, init, memory, valid): Inputs,
        dropout: &mut Option<&mut Dropout>,
    ) -> Result<Self> {
        let layers = model
            .decoder
            .layers
            .iter()
            .map(layer_weights)
            .collect::<Result<Vec<_>>>()?;
        let weights = AttentionWeights {
            w_in: att.w_in.as_ref().map(flat).transpose()?,
            w_out: flat(&att.w_out)?,
        };
        let tape = forward(&layers, &weights, sizes, y, init, memory, valid, dropout);
        Ok(AttentionPass {
            tape,
            layers,
            weights,
            y_mask,
        })
    }
}
