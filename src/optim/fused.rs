//! The optimizer's per-parameter arithmetic as in-place ops: on the CPU split over every core,
//! on CUDA one kernel per update (src/kernels/cuda/optimizer.cu); one pass over each tensor
//! and no temporaries. Written as Candle tensor ops, SGD made about nine full-size passes per
//! parameter and step, Adam about twenty-five.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::tensor_data::storage_f32;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `sum(g^2)` over a CPU tensor of any shape, in f64.
pub fn sum_squares(g: &Tensor) -> Result<f64> {
    let g = g.contiguous()?;
    let (s, l) = g.storage_and_layout();
    let data = storage_f32(&s, l, "gradient")?;
    Ok(data.par_chunks(CHUNK).map(sum_squares_of).sum())
}

/// `sum(x^2)` over a slice, in f64, in eight independent running sums: one sum is a chain
/// of dependent adds, which took the optimizer's norm at 512/16k (25M gradients) ~10 ms
/// where reading them takes ~2.
pub fn sum_squares_of(xs: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(c) {
            *lane += (x as f64) * (x as f64);
        }
    }
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    lanes.iter().sum::<f64>() + rest
}

/// `sums[slot] += sum(g^2)`: one parameter's share of the gradient norm added into one slot
/// of a small buffer on the parameters' device (on CUDA one kernel per parameter), so the
/// norm is read back once per step.
pub struct SumSquaresInto {
    pub slot: usize,
}

impl InplaceOp2 for SumSquaresInto {
    fn name(&self) -> &'static str {
        "sum-squares-into"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let sums = dst_f32(dst, dst_l)?;
        let Some(sum) = sums.get_mut(self.slot) else {
            candle_core::bail!(
                "sum-squares-into: slot {} outside {} sums",
                self.slot,
                sums.len()
            );
        };
        let g = src_f32(g, gl, gl.shape().elem_count())?;
        *sum += g.par_chunks(CHUNK).map(sum_squares_of).sum::<f64>() as f32;
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        super::fused_cuda::sum_squares_into((dst, dst_l), (g, gl), self.slot)
    }
}

fn dst_f32<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("fused update: the parameter must be a contiguous f32 tensor"),
    }
}

fn src_f32<'a>(s: &'a CpuStorage, l: &Layout, n: usize) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) if b - a == n => Ok(&v[a..b]),
        _ => candle_core::bail!("fused update: operands must be contiguous f32 of one size"),
    }
}

/// `f(dst[i], src[i])` for every element, in chunks over every core.
fn zip_in_place(
    dst: &mut CpuStorage,
    dst_l: &Layout,
    src: &CpuStorage,
    src_l: &Layout,
    f: impl Fn(&mut f32, f32) + Sync,
) -> candle_core::Result<()> {
    let d = dst_f32(dst, dst_l)?;
    let s = src_f32(src, src_l, d.len())?;
    d.par_chunks_mut(CHUNK)
        .zip(s.par_chunks(CHUNK))
        .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| f(d, s)));
    Ok(())
}

/// `w <- w - step * g`.
pub struct SgdUpdate {
    pub step: f32,
}

impl InplaceOp2 for SgdUpdate {
    fn name(&self) -> &'static str {
        "sgd-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let step = self.step;
        zip_in_place(dst, dst_l, g, gl, |w, g| *w -= step * g)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        super::fused_cuda::launch("sgd_update", (dst, dst_l), &[(g, gl)], &[self.step])
    }
}

/// `w[id] <- w[id] - step * row` for the given rows of a `(V, E)` parameter (a sparse SGD
/// step: the other rows' gradient is zero).
pub struct SgdRows<'a> {
    pub ids: &'a [u32],
    /// `(ids.len(), E)`.
    pub rows: &'a [f32],
    pub step: f32,
}

impl InplaceOp1 for SgdRows<'_> {
    fn name(&self) -> &'static str {
        "sgd-rows"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout) -> candle_core::Result<()> {
        let w = dst_f32(dst, dst_l)?;
        let e = self.rows.len() / self.ids.len().max(1);
        for (&id, row) in self.ids.iter().zip(self.rows.chunks_exact(e.max(1))) {
            let Some(target) = w.get_mut(id as usize * e..(id as usize + 1) * e) else {
                candle_core::bail!("sparse SGD step: row {id} is outside the parameter");
            };
            target
                .iter_mut()
                .zip(row)
                .for_each(|(w, g)| *w -= self.step * g);
        }
        Ok(())
    }
}

/// A moment's running average: `m <- decay * m + (1 - decay) * f(scale * g)`, with f the
/// identity (first moment) or the square (second).
pub struct MomentUpdate {
    pub decay: f32,
    pub scale: f32,
    pub square: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (d, s, sq) = (self.decay, self.scale, self.square);
        zip_in_place(dst, dst_l, g, gl, |m, g| {
            let g = s * g;
            *m = d * *m + (1.0 - d) * if sq { g * g } else { g };
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let square = if self.square { 1.0 } else { 0.0 };
        super::fused_cuda::launch(
            "adam_moment",
            (dst, dst_l),
            &[(g, gl)],
            &[self.decay, self.scale, square],
        )
    }
}

/// Adam's step from its moments: `w <- w - lr * (m / c1) / (sqrt(v / c2) + eps)`.
pub struct AdamUpdate {
    pub lr: f32,
    pub c1: f32,
    pub c2: f32,
    pub eps: f32,
}

impl InplaceOp3 for AdamUpdate {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let w = dst_f32(dst, dst_l)?;
        let m = src_f32(m, ml, w.len())?;
        let v = src_f32(v, vl, w.len())?;
        let (lr, c1, c2, eps) = (self.lr, self.c1, self.c2, self.eps);
        w.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(w, (m, v))| {
                for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                    *w -= lr * (m / c1) / ((v / c2).sqrt() + eps);
                }
            });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        m: &candle_core::CudaStorage,
        ml: &Layout,
        v: &candle_core::CudaStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        super::fused_cuda::launch(
            "adam_update",
            (dst, dst_l),
            &[(m, ml), (v, vl)],
            &[self.lr, self.c1, self.c2, self.eps],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::sum_squares_of;

    #[test]
    fn sum_squares_of_matches_one_running_sum() {
        for len in [0, 1, 7, 8, 9, 1000, 1003] {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
            let want: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
            let got = sum_squares_of(&xs);
            assert!(
                (got - want).abs() <= 1e-12 * (1.0 + want),
                "{len}: {got} vs {want}"
            );
        }
    }
}
