//! Cross-entropy over all target positions at once. On the CPU the log-softmax, the pick of
//! the target and the label-smoothing term run fused in one custom op (rows in parallel, no
//! (N, V) temporaries but the gradient); elsewhere the same math runs as plain Candle ops.

pub mod output_layer;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::error::Result;
use crate::tensor_data::{cpu_f32, storage_f32};

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

/// Per row: `[nll, smoothed, lse]` where lse is the row's log-sum-exp, `nll = lse - x_t` and
/// `smoothed = (1 - eps) * nll + eps * (lse - mean(x))`; lse is kept for the backward pass.
struct FusedCrossEntropy {
    eps: f32,
}

/// Log-sum-exp of one row (f32 exponentials, f64 sum).
fn lse(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| (x - max).exp() as f64).sum();
    max + sum.ln() as f32
}

fn wrap(e: crate::error::Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// The `n` target ids, each checked to be below the vocabulary size `v`.
fn u32_targets<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    v: usize,
) -> candle_core::Result<&'a [u32]> {
    let t = match (s, l.contiguous_offsets()) {
        (CpuStorage::U32(t), Some((a, b))) => &t[a..b],
        _ => {
            return Err(candle_core::Error::Msg(
                "cross-entropy targets must be contiguous u32".into(),
            ))
        }
    };
    if t.len() != n {
        return Err(candle_core::Error::Msg(format!(
            "cross-entropy: {} targets for {n} rows of logits",
            t.len()
        )));
    }
    if let Some(&id) = t.iter().find(|&&id| id as usize >= v) {
        return Err(candle_core::Error::Msg(format!(
            "cross-entropy: target id {id} is outside the vocabulary of {v}"
        )));
    }
    Ok(t)
}

impl CustomOp2 for FusedCrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let x = cpu_f32(s1, l1, "logits").map_err(wrap)?;
        let t = u32_targets(s2, l2, n, v)?;
        let eps = self.eps;
        let mut out = vec![0f32; 3 * n];
        out.par_chunks_mut(3).enumerate().for_each(|(r, o)| {
            let row = &x[r * v..(r + 1) * v];
            let z = lse(row);
            let nll = z - row[t[r] as usize];
            let mean = (row.iter().map(|&a| a as f64).sum::<f64>() / v as f64) as f32;
            o[0] = nll;
            o[1] = (1.0 - eps) * nll + eps * (z - mean);
            o[2] = z;
        });
        Ok((CpuStorage::F32(out), Shape::from((n, 3))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, v) = logits.dims2()?;
        let logits = logits.contiguous()?;
        let targets = targets.contiguous()?;
        let grad = grad.contiguous()?;
        let res = res.contiguous()?;
        let mut dx = vec![0f32; n * v];
        {
            let (xs, xl) = logits.storage_and_layout();
            let (ts, tl) = targets.storage_and_layout();
            let (gs, gl) = grad.storage_and_layout();
            let (rs, rl) = res.storage_and_layout();
            let x = storage_f32(&xs, xl, "logits").map_err(wrap)?;
            let t = match &*ts {
                candle_core::Storage::Cpu(c) => u32_targets(c, tl, n, v)?,
                _ => {
                    return Err(candle_core::Error::Msg(
                        "fused cross-entropy runs on the CPU".into(),
                    ))
                }
            };
            let g = storage_f32(&gs, gl, "loss gradient").map_err(wrap)?;
            let saved = storage_f32(&rs, rl, "saved log-sum-exp").map_err(wrap)?;
            let eps = self.eps;
            dx.par_chunks_mut(v).enumerate().for_each(|(r, d)| {
                let row = &x[r * v..(r + 1) * v];
                let (g_nll, g_smooth) = (g[3 * r], g[3 * r + 1]);
                let total = g_nll + g_smooth;
                if total == 0.0 {
                    return;
                }
                let z = saved[3 * r + 2];
                // d(lse)/dx = softmax; d(-x_t)/dx = -onehot; d(-mean)/dx = -1/V.
                let uniform = g_smooth * eps / v as f32;
                for (dv, &xv) in d.iter_mut().zip(row) {
                    *dv = total * (xv - z).exp() - uniform;
                }
                d[t[r] as usize] -= g_nll + g_smooth * (1.0 - eps);
            });
        }
        Ok((Some(Tensor::from_vec(dx, (n, v), logits.device())?), None))
    }
}

/// Per-position `(nll, smoothed loss)`, each `(N)`, before masking.
fn per_position(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    if logits.device().is_cpu() {
        let both = logits.contiguous()?.apply_op2(
            &targets.contiguous()?,
            FusedCrossEntropy { eps: eps as f32 },
        )?;
        return Ok((
            both.narrow(1, 0, 1)?.squeeze(1)?,
            both.narrow(1, 1, 1)?.squeeze(1)?,
        ));
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
