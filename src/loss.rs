//! Masked cross-entropy over all target positions at once.

use candle_core::{Tensor, D};

use crate::error::Result;

/// `logits (N, V)`, `targets (N)` u32, `mask (N)` f32 (1 real, 0 padding) -> the negative
/// log-likelihood of each position, `(N)`, zero on padding.
pub fn masked_nll(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    Ok((picked * mask)?.neg()?)
}

/// The summed negative log-likelihood of the real positions, a scalar.
pub fn masked_nll_sum(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    Ok(masked_nll(logits, targets, mask)?.sum_all()?)
}
