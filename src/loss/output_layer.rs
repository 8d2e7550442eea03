//! The training loss's output layer on the CPU as one custom op: `logits = h . Wᵀ + b`,
//! log-softmax, the pick of each target and label smoothing, with the gradients of h, W and
//! b computed in the same pass. The loss is the last node of the graph, so the gradient that
//! reaches it is known up to a scale; working it out while the logits are at hand spares
//! Candle's backward its full-size `(N, V)` temporaries (a zero tensor, an add and a serial
//! column sum for the bias), about a fifth of a 4-layer step before this op.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::vexp::exp_in_place;
use crate::kernels::{gemm_new, MatRef};
use crate::tensor_data::cpu_f32;

/// `hidden (N, H)`, `weight (V, H)`, `bias (V)` -> `[loss, nll]` `(2)`, summed over the rows
/// whose mask is 1: `nll = lse - x_t` and `loss = (1 - eps) nll + eps (lse - mean(x))`.
pub struct OutputLoss {
    /// `(N)` target ids.
    targets: Arc<[u32]>,
    /// `(N)` 1.0 for a real target, 0.0 for padding.
    mask: Arc<[f32]>,
    /// Label smoothing.
    eps: f32,
    /// Gradients of the loss alone (upstream gradient (1, 0)), from the forward pass.
    saved: Mutex<Option<Gradients>>,
}

/// `dh (N, H)`, `dw (V, H)`, `db (V)`.
pub struct Gradients {
    pub dh: Vec<f32>,
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
}

/// The two sums and the gradients for upstream gradients `(g_loss, g_nll)`.
pub struct Pass {
    pub loss: f64,
    pub nll: f64,
    pub grads: Gradients,
}

impl OutputLoss {
    pub fn new(targets: Vec<u32>, mask: Vec<f32>, eps: f32) -> Self {
        OutputLoss {
            targets: targets.into(),
            mask: mask.into(),
            eps,
            saved: Mutex::new(None),
        }
    }

    /// Every target id is below the vocabulary size `v`.
    pub fn check_targets(&self, v: usize) -> crate::error::Result<()> {
        match self.targets.iter().find(|&&t| t as usize >= v) {
            Some(&t) => Err(crate::error::Error::Training(format!(
                "output loss: target id {t} is outside the vocabulary of {v}"
            ))),
            None => Ok(()),
        }
    }

    /// Everything at once: logits, per-row losses, then `d logits` in place of the logits
    /// and the three products that carry it back. `h (N, H)`, `w (V, H)`, `b (V)`; every
    /// target must be below V (`check_targets`).
    pub fn pass(&self, h: &[f32], w: &[f32], b: &[f32], g_loss: f32, g_nll: f32) -> Pass {
        let (v, n) = (b.len(), self.targets.len());
        let hd = h.len() / n.max(1);
        let eps = self.eps;
        let mut x = gemm_new(n, v, hd, MatRef::rows(h, hd), MatRef::transposed(w, hd));
        // d loss / dx = p - (1 - eps) onehot - eps / V; d nll / dx = p - onehot.
        let p_scale = g_loss + g_nll;
        let uniform = g_loss * eps / v as f32;
        let at_target = g_nll + g_loss * (1.0 - eps);
        // Blocks of rows, each summing its rows of d logits into its own db while they are in
        // cache (a separate column-sum pass read all (N, V) again: ~5 ms at 1280 x 16000).
        let per_block = n.div_ceil(4 * rayon::current_num_threads()).max(1);
        let blocks: Vec<(f64, f64, Vec<f32>)> = x
            .par_chunks_mut(per_block * v.max(1))
            .zip(
                self.targets
                    .par_chunks(per_block)
                    .zip(self.mask.par_chunks(per_block)),
            )
            .map(|(rows, (targets, mask))| {
                let mut db = vec![0f32; v];
                let (mut loss, mut nll) = (0.0, 0.0);
                for (row, (&t, &m)) in rows.chunks_mut(v).zip(targets.iter().zip(mask)) {
                    if m == 0.0 {
                        row.fill(0.0);
                        continue;
                    }
                    let (max, sum) = add_bias_max_sum(row, b);
                    let x_t = row[t as usize];
                    // Each exponential once: the row becomes exp(x - max), then
                    // p_scale * p - uniform.
                    let z = exp_in_place(row, max);
                    let lse = max + z.ln();
                    let row_nll = lse - x_t;
                    let smooth = lse - (sum / v as f64) as f32;
                    let k = p_scale / z;
                    for (a, d) in row.iter_mut().zip(db.iter_mut()) {
                        *a = *a * k - uniform;
                        *d += *a;
                    }
                    row[t as usize] -= at_target;
                    db[t as usize] -= at_target;
                    loss += ((1.0 - eps) * row_nll + eps * smooth) as f64;
                    nll += row_nll as f64;
                }
                (loss, nll, db)
            })
            .collect();
        let (loss, nll) = blocks
            .iter()
            .fold((0.0, 0.0), |(l, n), b| (l + b.0, n + b.1));
        let mut db = vec![0f32; v];
        for block in &blocks {
            db.iter_mut().zip(&block.2).for_each(|(d, a)| *d += a);
        }
        // dW = dxᵀ . h straight into W's layout (27.4 ms against 28.5-32 for hᵀ . dx and a
        // transpose, with the gemm crate); both products run on `row_gemm`.
        let dw = gemm_new(v, hd, n, MatRef::transposed(&x, v), MatRef::rows(h, hd));
        let dh = gemm_new(n, hd, v, MatRef::rows(&x, v), MatRef::rows(w, hd));
        Pass {
            loss,
            nll,
            grads: Gradients { dh, dw, db },
        }
    }
}

/// `row += bias`; returns the row's maximum and its sum (f64).
fn add_bias_max_sum(row: &mut [f32], bias: &[f32]) -> (f32, f64) {
    // Eight independent lanes so the compiler can keep them in one vector register.
    let mut max = [f32::NEG_INFINITY; 8];
    let mut sum = [0f32; 8];
    let mut rows = row.chunks_exact_mut(8);
    let mut biases = bias.chunks_exact(8);
    for (r, b) in (&mut rows).zip(&mut biases) {
        for j in 0..8 {
            r[j] += b[j];
            max[j] = max[j].max(r[j]);
            sum[j] += r[j];
        }
    }
    let mut m = max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s: f64 = sum.iter().map(|&a| a as f64).sum();
    for (r, b) in rows.into_remainder().iter_mut().zip(biases.remainder()) {
        *r += b;
        m = m.max(*r);
        s += *r as f64;
    }
    (m, s)
}

impl CustomOp3 for OutputLoss {
    fn name(&self) -> &'static str {
        "output-loss"
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
        let (n, hd) = l1.shape().dims2()?;
        let (v, whd) = l2.shape().dims2()?;
        let bv = l3.shape().dims1()?;
        if whd != hd || bv != v || n != self.targets.len() || n != self.mask.len() {
            return Err(candle_core::Error::Msg(format!(
                "output loss: hidden ({n}, {hd}), weight ({v}, {whd}), bias ({bv}) and {} targets do not fit",
                self.targets.len()
            )));
        }
        self.check_targets(v).map_err(candle_core::Error::wrap)?;
        let wrap = candle_core::Error::wrap;
        let h = cpu_f32(s1, l1, "hidden").map_err(wrap)?;
        let w = cpu_f32(s2, l2, "proj.weight").map_err(wrap)?;
        let b = cpu_f32(s3, l3, "proj.bias").map_err(wrap)?;
        let pass = self.pass(h, w, b, 1.0, 0.0);
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(pass.grads);
        Ok((
            CpuStorage::F32(vec![pass.loss as f32, pass.nll as f32]),
            Shape::from(2),
        ))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_vec1::<f32>()?;
        let (g_loss, g_nll) = (g[0], g[1]);
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The saved gradients are for (1, 0); without smoothing loss == nll, so any
        // (g_loss, g_nll) is their sum times them.
        let (grads, scale) = match saved {
            Some(s) if self.eps == 0.0 => (s, g_loss + g_nll),
            Some(s) if g_nll == 0.0 => (s, g_loss),
            _ => {
                let h = hidden.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
                let w = weight.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
                let b = bias.contiguous()?.to_vec1::<f32>()?;
                (self.pass(&h, &w, &b, g_loss, g_nll).grads, 1.0)
            }
        };
        let dev = hidden.device();
        let scaled = |mut d: Vec<f32>| {
            if scale != 1.0 {
                d.par_chunks_mut(4096)
                    .for_each(|c| c.iter_mut().for_each(|a| *a *= scale));
            }
            d
        };
        Ok((
            Some(Tensor::from_vec(scaled(grads.dh), hidden.shape(), dev)?),
            Some(Tensor::from_vec(scaled(grads.dw), weight.shape(), dev)?),
            Some(Tensor::from_vec(scaled(grads.db), bias.shape(), dev)?),
        ))
    }
}

/// `hidden (N, H)` through the output layer `weight (V, H)`, `bias (V)` into the summed
/// training loss and plain NLL over the real targets (two scalars), CPU only.
pub fn output_loss(
    hidden: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    targets: Vec<u32>,
    mask: Vec<f32>,
    eps: f64,
) -> crate::error::Result<(Tensor, Tensor)> {
    let op = OutputLoss::new(targets, mask, eps as f32);
    let both = hidden
        .contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    Ok((both.get(0)?, both.get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::smoothed_nll_sums;
    use candle_core::{Device, Var};

    fn var(rng: &mut crate::rng::Rng, shape: (usize, usize)) -> Var {
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The fused op against the plain graph (matmul, bias, fused cross-entropy): both sums
    /// and the gradients of h, W and b, for the loss alone, the NLL alone and a mix, with
    /// and without smoothing, padding rows included.
    #[test]
    fn matches_projection_then_cross_entropy() {
        let mut rng = crate::rng::Rng::new(11);
        let (n, h, v) = (13, 9, 37);
        let (hid, w, b) = (
            var(&mut rng, (n, h)),
            var(&mut rng, (v, h)),
            var(&mut rng, (1, v)),
        );
        let b1 = b.as_tensor().squeeze(0).unwrap();
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % v as u32).collect();
        let mask: Vec<f32> = (0..n).map(|i| if i % 5 == 4 { 0.0 } else { 1.0 }).collect();
        let dev = Device::Cpu;
        for eps in [0.0, 0.1] {
            for (gl, gn) in [(1.0, 0.0), (0.0, 1.0), (0.7, 0.3)] {
                let (loss, nll) = output_loss(
                    hid.as_tensor(),
                    w.as_tensor(),
                    &b1,
                    targets.clone(),
                    mask.clone(),
                    eps,
                )
                .unwrap();
                let total = ((&loss * gl).unwrap() + (&nll * gn).unwrap()).unwrap();
                let got = total.backward().unwrap();
                let logits = hid
                    .as_tensor()
                    .matmul(&w.as_tensor().t().unwrap())
                    .unwrap()
                    .broadcast_add(&b1)
                    .unwrap();
                let (rl, rn) = smoothed_nll_sums(
                    &logits,
                    &Tensor::from_vec(targets.clone(), n, &dev).unwrap(),
                    &Tensor::from_vec(mask.clone(), n, &dev).unwrap(),
                    eps,
                )
                .unwrap();
                let want = ((&rl * gl).unwrap() + (&rn * gn).unwrap())
                    .unwrap()
                    .backward()
                    .unwrap();
                for (a, b) in [(&loss, &rl), (&nll, &rn)] {
                    let (a, b) = (a.to_scalar::<f32>().unwrap(), b.to_scalar::<f32>().unwrap());
                    assert!((a - b).abs() < 1e-4 * b.abs(), "eps {eps}: sum {a} vs {b}");
                }
                for (name, t) in [
                    ("h", hid.as_tensor()),
                    ("W", w.as_tensor()),
                    ("b", b.as_tensor()),
                ] {
                    let d = max_diff(
                        &got.get(t).unwrap().reshape(t.shape()).unwrap(),
                        want.get(t).unwrap(),
                    );
                    assert!(d < 1e-5, "eps {eps} ({gl}, {gn}): d{name} differs by {d}");
                }
            }
        }
    }

    #[test]
    fn target_outside_the_vocabulary_is_an_error() {
        let dev = Device::Cpu;
        let h = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 3), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let err = output_loss(&h, &w, &b, vec![1, 4], vec![1.0, 1.0], 0.0).unwrap_err();
        assert!(err.to_string().contains("target id 4"), "{err}");
    }
}
