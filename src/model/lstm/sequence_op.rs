//! The LSTM layer's whole time loop as one Candle op, off the CPU's fused layer (the CUDA
//! path, `LstmPath::Cell`). The forward runs every step inside the op: per step one
//! recurrent product (cuBLAS on the GPU) and one fused cell kernel that adds the input
//! projection and keeps padded rows' state (src/kernels/cuda/lstm_cell.cu, launched by
//! `sequence_cuda`). The backward is a hand-written BPTT over tensors: per step the
//! cell-gradient op and one product, then `W_hh`'s gradient as one product over all steps.
//! Autograd sees one node per layer, so the gradient of the input projection arrives whole:
//! stepping with `xw.get(t)` made it pad a `(T, B, 4H)` gradient at every step, which grew
//! with T squared. The CPU implementation is plain loops: what the tests hold to the
//! reference (CPU training takes the fused layer instead).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::cell_op::{cell_forward, LstmCellGradOp};
use super::LstmLayer;
use crate::data::batch::StepMask;
use crate::error::{Error, Result};
use crate::tensor_data::cpu_f32;

/// Inputs: the projected input `xw (T, B, 4H)` (biases folded in), `w_hh (4H, H)` and
/// `hc0 (2, B, H)` = [h0, c0]. Output: `T * B * 6H` floats, every step's h `(T, B, H)`, then
/// every step's c `(T, B, H)`, then every step's gate pre-activations `(T, B, 4H)` (kept
/// for the backward; nothing reads their gradient).
pub struct LstmSequenceOp {
    steps: usize,
    batch: usize,
    hidden: usize,
    /// Where rows are padding: their state passes through unchanged.
    mask: Option<StepMask>,
}

impl LstmSequenceOp {
    fn sizes(&self) -> (usize, usize, usize) {
        (self.steps, self.batch, self.hidden)
    }

    fn check(&self, xw: &Layout, w_hh: &Layout, hc0: &Layout) -> candle_core::Result<()> {
        let (t, b, h) = self.sizes();
        if xw.shape().dims() != [t, b, 4 * h]
            || w_hh.shape().dims() != [4 * h, h]
            || hc0.shape().dims() != [2, b, h]
        {
            candle_core::bail!(
                "lstm sequence: xw {:?}, w_hh {:?} and hc0 {:?} do not fit {t} steps of {b} rows and {h} units",
                xw.shape(),
                w_hh.shape(),
                hc0.shape()
            );
        }
        Ok(())
    }
}

fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    cpu_f32(s, l, what).map_err(candle_core::Error::wrap)
}

impl CustomOp3 for LstmSequenceOp {
    fn name(&self) -> &'static str {
        "lstm-sequence"
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
        self.check(l1, l2, l3)?;
        let (t_len, b_len, h) = self.sizes();
        let (xw, w, hc0) = (
            f32_data(s1, l1, "xw")?,
            f32_data(s2, l2, "w_hh")?,
            f32_data(s3, l3, "hc0")?,
        );
        let (bh, tbh) = (b_len * h, t_len * b_len * h);
        let mut out = vec![0f32; 6 * tbh];
        let (hs, rest) = out.split_at_mut(tbh);
        let (cs, gates) = rest.split_at_mut(tbh);
        for t in 0..t_len {
            let (h_done, h_rest) = hs.split_at_mut(t * bh);
            let (c_done, c_rest) = cs.split_at_mut(t * bh);
            let (h_prev, c_prev) = if t == 0 {
                (&hc0[..bh], &hc0[bh..])
            } else {
                (&h_done[(t - 1) * bh..], &c_done[(t - 1) * bh..])
            };
            let g_t = &mut gates[t * 4 * bh..(t + 1) * 4 * bh];
            for (r, g_row) in g_t.chunks_mut(4 * h).enumerate() {
                let x_row = &xw[(t * b_len + r) * 4 * h..][..4 * h];
                let hp = &h_prev[r * h..(r + 1) * h];
                for (u, g) in g_row.iter_mut().enumerate() {
                    let w_row = &w[u * h..(u + 1) * h];
                    *g = x_row[u] + hp.iter().zip(w_row).map(|(a, b)| a * b).sum::<f32>();
                }
            }
            let hc = cell_forward(g_t, c_prev, h);
            for r in 0..b_len {
                let keep = self
                    .mask
                    .as_ref()
                    .is_none_or(|m| m.flags[t * b_len + r] != 0.0);
                let (h_t, c_t) = (
                    &mut h_rest[r * h..(r + 1) * h],
                    &mut c_rest[r * h..(r + 1) * h],
                );
                if keep {
                    h_t.copy_from_slice(&hc[r * 2 * h..r * 2 * h + h]);
                    c_t.copy_from_slice(&hc[r * 2 * h + h..(r + 1) * 2 * h]);
                } else {
                    h_t.copy_from_slice(&h_prev[r * h..(r + 1) * h]);
                    c_t.copy_from_slice(&c_prev[r * h..(r + 1) * h]);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(6 * tbh)))
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
        self.check(l1, l2, l3)?;
        let out = match &self.mask {
            Some(m) => {
                let (ms, ml) = m.tensor.storage_and_layout();
                let candle_core::Storage::Cuda(ms) = &*ms else {
                    candle_core::bail!("lstm sequence: the padding mask is not on the GPU");
                };
                super::sequence_cuda::forward(
                    (s1, l1),
                    (s2, l2),
                    (s3, l3),
                    Some((ms, ml)),
                    self.sizes(),
                )?
            }
            None => {
                super::sequence_cuda::forward((s1, l1), (s2, l2), (s3, l3), None, self.sizes())?
            }
        };
        Ok((out, Shape::from(6 * self.steps * self.batch * self.hidden)))
    }

    fn bwd(
        &self,
        _xw: &Tensor,
        w_hh: &Tensor,
        hc0: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (t_len, b, h) = self.sizes();
        let tbh = t_len * b * h;
        let (w, hc0, res, grad) = (w_hh.detach(), hc0.detach(), res.detach(), grad_res.detach());
        let hs = res.narrow(0, 0, tbh)?.reshape((t_len, b, h))?;
        let cs = res.narrow(0, tbh, tbh)?.reshape((t_len, b, h))?;
        let gates = res
            .narrow(0, 2 * tbh, 4 * tbh)?
            .reshape((t_len, b, 4 * h))?;
        let d_hs = grad.narrow(0, 0, tbh)?.reshape((t_len, b, h))?;
        let d_cs = grad.narrow(0, tbh, tbh)?.reshape((t_len, b, h))?;
        let (h0, c0) = (hc0.get(0)?, hc0.get(1)?);
        let mut dh_next = h0.zeros_like()?;
        let mut dc_next = c0.zeros_like()?;
        let mut d_gates = Vec::with_capacity(t_len);
        for t in (0..t_len).rev() {
            let dh = (d_hs.get(t)? + &dh_next)?;
            let dc = (d_cs.get(t)? + &dc_next)?;
            let c_prev = if t == 0 { c0.clone() } else { cs.get(t - 1)? };
            let cell = gates.get(t)?.contiguous()?.apply_op3_no_bwd(
                &c_prev.contiguous()?,
                &Tensor::cat(&[&dh, &dc], 1)?,
                &LstmCellGradOp,
            )?;
            let mut dg = cell.narrow(1, 0, 4 * h)?.contiguous()?;
            let mut dc_prev = cell.narrow(1, 4 * h, h)?;
            let mut dh_pass = None;
            if let Some(m) = &self.mask {
                // Padding rows passed their state through: their gradient does too.
                let keep = m.tensor.get(t)?; // (B, 1)
                let drop = keep.affine(-1.0, 1.0)?;
                dg = dg.broadcast_mul(&keep)?;
                dc_prev = (dc_prev.broadcast_mul(&keep)? + dc.broadcast_mul(&drop)?)?;
                dh_pass = Some(dh.broadcast_mul(&drop)?);
            }
            dh_next = dg.matmul(&w)?;
            if let Some(p) = dh_pass {
                dh_next = (dh_next + p)?;
            }
            dc_next = dc_prev;
            d_gates.push(dg);
        }
        d_gates.reverse();
        let d_xw = Tensor::stack(&d_gates, 0)?; // (T, B, 4H)
                                                // The h each step's gates read: h0, then every step's h but the last.
        let h_prevs = if t_len == 1 {
            h0.unsqueeze(0)?
        } else {
            Tensor::cat(&[&h0.unsqueeze(0)?, &hs.narrow(0, 0, t_len - 1)?], 0)?
        };
        let d_w = d_xw
            .reshape((t_len * b, 4 * h))?
            .t()?
            .matmul(&h_prevs.reshape((t_len * b, h))?)?;
        let d_hc0 = Tensor::stack(&[&dh_next, &dc_next], 0)?;
        Ok((Some(d_xw), Some(d_w), Some(d_hc0)))
    }
}

impl LstmLayer {
    /// Runs the layer over the projected input `xw (T, B, 4H)` from `h0, c0 (B, H)` as one
    /// `LstmSequenceOp`: every step's `h (T, B, H)` and the last step's `c (B, H)`.
    pub(super) fn forward_sequence(
        &self,
        xw: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
    ) -> Result<(Tensor, Tensor)> {
        let (steps, batch, four_h) = xw.dims3()?;
        if steps == 0 {
            return Err(Error::Config("an LSTM layer got an empty sequence".into()));
        }
        let hidden = four_h / 4;
        let op = LstmSequenceOp {
            steps,
            batch,
            hidden,
            mask: mask.cloned(),
        };
        let hc0 = Tensor::stack(&[h0, c0], 0)?.contiguous()?;
        let out = xw
            .contiguous()?
            .apply_op3(&self.weight_hh.contiguous()?, &hc0, op)?;
        let tbh = steps * batch * hidden;
        let hs = out.narrow(0, 0, tbh)?.reshape((steps, batch, hidden))?;
        let c_last = out
            .narrow(0, tbh + (steps - 1) * batch * hidden, batch * hidden)?
            .reshape((batch, hidden))?;
        Ok((hs, c_last))
    }
}
