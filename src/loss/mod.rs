//! Cross-entropy over all target positions at once. On the CPU and on CUDA the log-softmax,
//! the pick of the target and the label-smoothing term run fused in one custom op
//! (`cross_entropy`: no (N, V) temporaries but the gradient); elsewhere the same math runs
//! as plain Candle ops.

mod cross_entropy;
#[cfg(feature = "cuda")]
mod cross_entropy_cuda;
pub mod output_layer;

use candle_core::{Tensor, D};

use crate::error::Result;

/// `logits (N, V)`, `targets (N)` u32, `mask (N)` f32 (1 real, 0 padding) -> the negative
/// log-likelihood of each position, `(N)`, zero on padding.
pub fn masked_nll(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    Ok((picked * mask)?.neg()?)
}

/// The summed negative log-likelihood of the real positions, a scalar: shapes as
/// `masked_nll`.
pub fn masked_nll_sum(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    Ok(masked_nll(logits, targets, mask)?.sum_all()?)
}

/// Per-position `(nll, smoothed loss)`, each `(N)`, before masking.
fn per_position(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    if cross_entropy::runs_on(logits.device()) {
        return cross_entropy::per_position(logits, targets, eps as f32);
    }
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let uniform = logp.mean(D::Minus1)?.neg()?;
    let smoothed = ((&nll * (1.0 - eps))? + (uniform * eps)?)?;
    Ok((nll, smoothed))
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
    let (nll, smoothed) = per_position(logits, targets, eps)?;
    let nll_sum = (nll * mask)?.sum_all()?;
    if eps == 0.0 {
        return Ok((nll_sum.clone(), nll_sum));
    }
    Ok(((smoothed * mask)?.sum_all()?, nll_sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op against log_softmax + gather in plain Candle ops: values and gradients.
    #[test]
    fn fused_cross_entropy_matches_plain_ops() {
        let mut rng = crate::rng::Rng::new(5);
        let (n, v) = (7, 11);
        let data: Vec<f32> = (0..n * v).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let targets = Tensor::from_vec(
            (0..n as u32)
                .map(|i| (i * 5) % v as u32)
                .collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::from_vec(vec![1f32, 1., 0., 1., 1., 1., 0.], n, &Device::Cpu).unwrap();
        for eps in [0.0, 0.1] {
            let x =
                Var::from_tensor(&Tensor::from_vec(data.clone(), (n, v), &Device::Cpu).unwrap())
                    .unwrap();
            let (loss, nll) = smoothed_nll_sums(x.as_tensor(), &targets, &mask, eps).unwrap();
            let g = ((loss * 0.7).unwrap() + (nll.clone() * 0.3).unwrap())
                .unwrap()
                .backward()
                .unwrap();
            let fused = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            // Reference: the same loss through log_softmax.
            let y =
                Var::from_tensor(&Tensor::from_vec(data.clone(), (n, v), &Device::Cpu).unwrap())
                    .unwrap();
            let logp = candle_nn::ops::log_softmax(y.as_tensor(), D::Minus1).unwrap();
            let rnll = (logp
                .gather(&targets.unsqueeze(1).unwrap(), 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
                .neg()
                .unwrap()
                * &mask)
                .unwrap()
                .sum_all()
                .unwrap();
            let runi = (logp.mean(D::Minus1).unwrap().neg().unwrap() * &mask)
                .unwrap()
                .sum_all()
                .unwrap();
            let rloss = ((&rnll * (1.0 - eps)).unwrap() + (runi * eps).unwrap()).unwrap();
            let rg = ((rloss.clone() * 0.7).unwrap() + (rnll.clone() * 0.3).unwrap())
                .unwrap()
                .backward()
                .unwrap();
            let want = rg
                .get(y.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let a = nll.to_scalar::<f32>().unwrap();
            let b = rnll.to_scalar::<f32>().unwrap();
            assert!((a - b).abs() < 1e-4 * b.abs(), "nll {a} vs {b}");
            let max = fused
                .iter()
                .zip(&want)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(max < 1e-5, "eps {eps}: gradient differs by {max}");
        }
    }
}
