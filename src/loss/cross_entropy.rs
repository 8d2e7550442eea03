//! The fused cross-entropy op: per row of logits `(N, V)`, the negative log-likelihood of
//! the target, its label-smoothed form and the log-sum-exp, in one pass; its gradient in a
//! second op. The CPU implementation is the reference for the CUDA kernels
//! (src/kernels/cuda/cross_entropy.cu).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::tensor_data::cpu_f32;

/// Per row: `[nll, smoothed, lse]` where lse is the row's log-sum-exp, `nll = lse - x_t` and
/// `smoothed = (1 - eps) * nll + eps * (lse - mean(x))`; lse is kept for the backward pass.
struct FusedCrossEntropy {
    eps: f32,
}

/// The gradient of `FusedCrossEntropy`: logits `(N, V)`, targets `(N)`, and `(N, 6)` =
/// [the gradient of its three outputs | its three outputs] -> `d logits (N, V)`.
struct CrossEntropyGrad {
    eps: f32,
}

/// Whether the fused op runs on `device` (elsewhere: plain Candle ops).
pub fn runs_on(device: &Device) -> bool {
    device.is_cpu() || device.is_cuda()
}

/// Per-position `(nll, smoothed loss)`, each `(N)`, through the fused op.
pub fn per_position(logits: &Tensor, targets: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let both = logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, FusedCrossEntropy { eps })?;
    Ok((
        both.narrow(1, 0, 1)?.squeeze(1)?,
        both.narrow(1, 1, 1)?.squeeze(1)?,
    ))
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

/// Errors unless the targets' layout holds `n` ids.
fn targets_len(l: &Layout, n: usize) -> candle_core::Result<()> {
    if l.shape().elem_count() != n {
        candle_core::bail!(
            "cross-entropy: {} targets for {n} rows of logits",
            l.shape().elem_count()
        );
    }
    Ok(())
}

/// Errors unless the gradient input is `(n, 6)`.
fn grad_len(l: &Layout, n: usize) -> candle_core::Result<()> {
    if l.shape().dims() != [n, 6] {
        candle_core::bail!(
            "cross-entropy gradient: expected ({n}, 6), got {:?}",
            l.shape()
        );
    }
    Ok(())
}

/// The `n` target ids, each checked to be below the vocabulary size `v`.
fn u32_targets<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    v: usize,
) -> candle_core::Result<&'a [u32]> {
    targets_len(l, n)?;
    let t = match (s, l.contiguous_offsets()) {
        (CpuStorage::U32(t), Some((a, b))) => &t[a..b],
        _ => {
            return Err(candle_core::Error::Msg(
                "cross-entropy targets must be contiguous u32".into(),
            ))
        }
    };
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        targets_len(l2, n)?;
        let out = super::cross_entropy_cuda::launch(
            "cross_entropy_fwd",
            (s1, l1),
            (s2, l2),
            None,
            3 * n,
            (n, v),
            self.eps,
        )?;
        Ok((out, Shape::from((n, 3))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gs = Tensor::cat(&[grad, res], 1)?;
        let dx = logits.contiguous()?.apply_op3_no_bwd(
            &targets.contiguous()?,
            &gs.contiguous()?,
            &CrossEntropyGrad { eps: self.eps },
        )?;
        Ok((Some(dx), None))
    }
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let x = cpu_f32(s1, l1, "logits").map_err(wrap)?;
        let t = u32_targets(s2, l2, n, v)?;
        let gs = cpu_f32(s3, l3, "loss gradient").map_err(wrap)?;
        grad_len(l3, n)?;
        let eps = self.eps;
        let mut dx = vec![0f32; n * v];
        dx.par_chunks_mut(v).enumerate().for_each(|(r, d)| {
            let row = &x[r * v..(r + 1) * v];
            let g = &gs[6 * r..6 * r + 6];
            let (g_nll, g_smooth, z) = (g[0], g[1], g[5]);
            let total = g_nll + g_smooth;
            if total == 0.0 {
                return;
            }
            // d(lse)/dx = softmax; d(-x_t)/dx = -onehot; d(-mean)/dx = -1/V.
            let uniform = g_smooth * eps / v as f32;
            for (dv, &xv) in d.iter_mut().zip(row) {
                *dv = total * (xv - z).exp() - uniform;
            }
            d[t[r] as usize] -= g_nll + g_smooth * (1.0 - eps);
        });
        Ok((CpuStorage::F32(dx), Shape::from((n, v))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        targets_len(l2, n)?;
        grad_len(l3, n)?;
        let dx = super::cross_entropy_cuda::launch(
            "cross_entropy_bwd",
            (s1, l1),
            (s2, l2),
            Some((s3, l3)),
            n * v,
            (n, v),
            self.eps,
        )?;
        Ok((dx, Shape::from((n, v))))
    }
}
