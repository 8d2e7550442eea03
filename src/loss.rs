//! Masked cross-entropy over all target positions at once, with optional label smoothing.

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

/// Training loss with label smoothing `eps`: per real position
/// `(1 - eps) * nll + eps * mean_v(-log p_v)`. Returns (smoothed loss sum, plain NLL sum),
/// both scalars; the plain sum is what perplexity is computed from.
pub fn smoothed_nll_sums(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = (logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)? * mask)?
        .neg()?
        .sum_all()?;
    if eps == 0.0 {
        return Ok((nll.clone(), nll));
    }
    let uniform = (logp.mean(D::Minus1)? * mask)?.neg()?.sum_all()?;
    let loss = ((&nll * (1.0 - eps))? + (uniform * eps)?)?;
    Ok((loss, nll))
}
