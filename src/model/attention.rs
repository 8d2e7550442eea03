//! Luong et al. (2015) global attention with input feeding, in Candle ops (every device;
//! training and the tensor search path). At decoder step t the top layer's `h_t` scores
//! every encoder top-layer state `h_s` (`dot`: h_t . h_s; `general`: (W_a h_t) . h_s),
//! padded source positions masked out; the softmax of the scores weighs the states into a
//! context `c_t`, and the attentional vector `h~_t = tanh(W_c [c_t | h_t])` is what the
//! output layer reads and what joins the next step's input (input feeding).

use candle_core::{DType, Tensor, D};

use crate::config::Attention;
use crate::data::batch::StepMask;
use crate::error::Result;

/// Added to the scores of padded source positions: their softmax weight is exactly 0.
const MASKED: f64 = -1e9;

/// The attention's weights (`ATTN_IN`, `ATTN_OUT` in `params`).
#[derive(Debug, Clone)]
pub struct AttentionLayer {
    pub kind: Attention,
    /// `W_a (H, H)` for `general`.
    pub w_in: Option<Tensor>,
    /// `W_c (H, 2H)`.
    pub w_out: Tensor,
}

/// The encoder's top-layer outputs as attention reads them, one row per decoder row.
#[derive(Debug, Clone)]
pub struct Memory {
    /// `(B, S, H)`.
    pub states: Tensor,
    /// `(B, S)`: 0 at real source positions, `MASKED` at padding; None when nothing is padded.
    pub bias: Option<Tensor>,
}

impl Memory {
    /// From the encoder's top outputs `(S, B, H)` and the source's step mask.
    pub fn new(top: &Tensor, mask: Option<&StepMask>) -> Result<Self> {
        let states = top.transpose(0, 1)?.contiguous()?;
        let bias = match mask {
            Some(m) => {
                let keep = m.tensor.squeeze(2)?.t()?.contiguous()?; // (B, S)
                Some(((1.0 - keep)? * MASKED)?)
            }
            None => None,
        };
        Ok(Memory { states, bias })
    }

    /// Row i becomes row `rows[i]` (`(R)` u32), as beams are reordered.
    pub fn select_rows(&self, rows: &Tensor) -> Result<Self> {
        Ok(Memory {
            states: self.states.index_select(rows, 0)?,
            bias: match &self.bias {
                Some(b) => Some(b.index_select(rows, 0)?),
                None => None,
            },
        })
    }
}

impl AttentionLayer {
    /// `top (B, H)` -> the attentional vector `(B, H)` and the attention weights `(B, S)`.
    pub fn attend(&self, top: &Tensor, memory: &Memory) -> Result<(Tensor, Tensor)> {
        let query = match &self.w_in {
            Some(w) => top.matmul(&w.t()?)?,
            None => top.clone(),
        };
        // (B, S, H) . (B, H, 1) -> (B, S)
        let mut scores = memory
            .states
            .matmul(&query.unsqueeze(2)?.contiguous()?)?
            .squeeze(2)?;
        if let Some(b) = &memory.bias {
            scores = (scores + b)?;
        }
        let weights = softmax_rows(&scores)?;
        // (B, 1, S) . (B, S, H) -> (B, H)
        let context = weights
            .unsqueeze(1)?
            .contiguous()?
            .matmul(&memory.states)?
            .squeeze(1)?;
        let joined = Tensor::cat(&[&context, top], 1)?;
        let vector = joined.matmul(&self.w_out.t()?)?.tanh()?;
        Ok((vector, weights))
    }

    /// The same weights cut from any autograd graph.
    pub fn detached(&self) -> Self {
        AttentionLayer {
            kind: self.kind,
            w_in: self.w_in.as_ref().map(|w| w.detach()),
            w_out: self.w_out.detach(),
        }
    }
}

/// Softmax over the last dimension of `(B, S)`, max-shifted, differentiable.
fn softmax_rows(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Zeros `(B, H)`: the attentional vector before the first step.
pub fn first_feed(batch: usize, hidden: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros((batch, hidden), DType::F32, like.device())?)
}

/// Per row of `weights (R, S)`, the index in the source as given of the position attended
/// to most (positions count from the front padding; `reversed`: the encoder read the
/// source backwards).
pub fn peaks(weights: &Tensor, memory: &Memory, reversed: bool) -> Result<Vec<u32>> {
    let (rows, steps) = weights.dims2()?;
    let best = weights.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let lens: Vec<usize> = match &memory.bias {
        Some(b) => b
            .to_vec2::<f32>()?
            .iter()
            .map(|r| r.iter().filter(|&&v| v == 0.0).count())
            .collect(),
        None => vec![steps; rows],
    };
    Ok(best
        .iter()
        .zip(lens)
        .map(|(&p, len)| {
            let k = (p as usize).saturating_sub(steps - len);
            if reversed {
                len.saturating_sub(1 + k) as u32
            } else {
                k as u32
            }
        })
        .collect())
}
