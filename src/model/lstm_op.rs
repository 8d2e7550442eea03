//! One LSTM layer as a single Candle custom op on the CPU: the whole time loop runs inside,
//! one `rowdot` product per step for h . W_hh^T (W_hh read in place, not repacked), the gate
//! arithmetic split over the batch rows on every core with vectorised activations, and the
//! backward pass is hand-written BPTT with one big gemm for dW_hh. `lstm::LstmLayer` falls back to plain Candle ops elsewhere (GPU).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use rayon::prelude::*;

use super::kernels::{cpu_f32, gemm, lstm_cell, storage_f32, MatRef};
use super::packed::PackedWt;
use super::rowdot::matmul_wt;
use super::vexp::tanh_in_place;

/// The fused layer. Inputs: `xw (T, B, 4H)` = x . W_ih^T + b_ih + b_hh for every step,
/// `w_hh (4H, H)`, `hc0 (2, B, H)` = [h0, c0].
///
/// Output: a flat tensor of `6 * T * B * H` floats laid out as
/// `[h (T, B, H) | c (T, B, H) | gates (T, B, 4H)]`, gates holding the activated i, f, g, o
/// (kept for the backward pass; only h and c are for callers).
pub struct LstmLayerOp {
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
    /// `(T * B)` flags: 1.0 where step t of row b is a real token, 0.0 where it is padding
    /// (the state then passes through unchanged). `None`: every step is real.
    pub mask: Option<Arc<[f32]>>,
}

impl LstmLayerOp {
    fn sizes(&self) -> (usize, usize, usize) {
        (self.steps, self.batch, self.hidden)
    }

    fn valid(&self, t: usize, b: usize) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| m[t * self.batch + b] != 0.0)
    }

    /// Runs the forward time loop; returns the flat output described on the type.
    pub fn forward(&self, xw: &[f32], w_hh: &[f32], hc0: &[f32]) -> Vec<f32> {
        let (t_len, b_len, h) = self.sizes();
        let bh = b_len * h;
        let tbh = t_len * bh;
        assert_eq!(xw.len(), t_len * b_len * 4 * h, "xw size");
        assert_eq!(w_hh.len(), 4 * h * h, "w_hh size");
        assert_eq!(hc0.len(), 2 * bh, "hc0 size");
        let mut out = vec![0f32; 6 * tbh];
        let (hc, gates) = out.split_at_mut(2 * tbh);
        let (hs, cs) = hc.split_at_mut(tbh);
        let (h0, c0) = hc0.split_at(bh);
        let recurrent = Recurrent::new(w_hh, 4 * h, b_len);
        for t in 0..t_len {
            let g_t = &mut gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            g_t.copy_from_slice(&xw[t * b_len * 4 * h..(t + 1) * b_len * 4 * h]);
            let (h_done, h_rest) = hs.split_at_mut(t * bh);
            let (c_done, c_rest) = cs.split_at_mut(t * bh);
            let (h_prev, c_prev) = if t == 0 {
                (h0, c0)
            } else {
                (&h_done[(t - 1) * bh..], &c_done[(t - 1) * bh..])
            };
            // g_t += h_{t-1} . W_hh^T (a gemm would repack W_hh every step).
            recurrent.add_product(h_prev, g_t);
            let rows = g_t
                .par_chunks_mut(4 * h)
                .zip(h_rest[..bh].par_chunks_mut(h))
                .zip(
                    c_rest[..bh]
                        .par_chunks_mut(h)
                        .zip(h_prev[..bh].par_chunks(h).zip(c_prev[..bh].par_chunks(h))),
                )
                .enumerate();
            rows.with_min_len(8)
                .for_each(|(b, ((g, h_t), (c_t, (hp, cp))))| {
                    if self.valid(t, b) {
                        lstm_cell(g, cp, c_t, h_t);
                    } else {
                        // Padding: the state passes through; no gate is used.
                        h_t.copy_from_slice(hp);
                        c_t.copy_from_slice(cp);
                        g.fill(0.0);
                    }
                });
        }
        out
    }

    /// BPTT. `out` is the forward output, `d_out` its gradient (same layout; the gates part
    /// is ignored). Returns `(d_xw (T, B, 4H), d_w_hh (4H, H), d_hc0 (2, B, H))`.
    pub fn backward(
        &self,
        w_hh: &[f32],
        hc0: &[f32],
        out: &[f32],
        d_out: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (t_len, b_len, h) = self.sizes();
        let bh = b_len * h;
        let tbh = t_len * bh;
        let (hs, rest) = out.split_at(tbh);
        let (cs, gates) = rest.split_at(tbh);
        let (dh_ext, rest) = d_out.split_at(tbh);
        let dc_ext = &rest[..tbh];
        let (h0, c0) = hc0.split_at(bh);
        let mut d_gates = vec![0f32; t_len * b_len * 4 * h];
        let mut dh_next = vec![0f32; bh];
        let mut dc_next = vec![0f32; bh];
        // W_hh^T (H, 4H), so that dh_{t-1} = dgates_t . (W_hh^T)^T is the same product.
        let mut w_hh_t = vec![0f32; 4 * h * h];
        for g in 0..4 * h {
            for j in 0..h {
                w_hh_t[j * 4 * h + g] = w_hh[g * h + j];
            }
        }
        let recurrent_t = Recurrent::new(&w_hh_t, h, b_len);
        for t in (0..t_len).rev() {
            let dg_t = &mut d_gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            let g_t = &gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            let c_t = &cs[t * bh..(t + 1) * bh];
            let c_prev = if t == 0 {
                c0
            } else {
                &cs[(t - 1) * bh..t * bh]
            };
            let (dh_t, dc_t) = (&dh_ext[t * bh..(t + 1) * bh], &dc_ext[t * bh..(t + 1) * bh]);
            dg_t.par_chunks_mut(4 * h)
                .zip(dh_next.par_chunks_mut(h).zip(dc_next.par_chunks_mut(h)))
                .zip(
                    g_t.par_chunks(4 * h).zip(c_t.par_chunks(h)).zip(
                        c_prev
                            .par_chunks(h)
                            .zip(dh_t.par_chunks(h).zip(dc_t.par_chunks(h))),
                    ),
                )
                .enumerate()
                .with_min_len(8)
                .for_each(|(b, ((dg, (dhn, dcn)), ((g, c), (cp, (dhe, dce)))))| {
                    if self.valid(t, b) {
                        cell_backward(dg, dhn, dcn, g, c, cp, dhe, dce);
                    } else {
                        // Padding passed the state through: so does its gradient.
                        dhn.iter_mut().zip(dhe).for_each(|(a, b)| *a += b);
                        dcn.iter_mut().zip(dce).for_each(|(a, b)| *a += b);
                    }
                });
            // dh_{t-1} += dgates_t . W_hh   (B, 4H) x (4H, H)
            recurrent_t.add_product(dg_t, &mut dh_next);
        }
        // dW_hh = sum_t dgates_t^T . h_{t-1}: h0 for t = 0, then one gemm over all later steps.
        let mut d_w = vec![0f32; 4 * h * h];
        let first = &d_gates[..b_len * 4 * h];
        gemm(
            4 * h,
            h,
            b_len,
            &mut d_w,
            false,
            MatRef::transposed(first, 4 * h),
            MatRef::rows(h0, h),
        );
        if t_len > 1 {
            gemm(
                4 * h,
                h,
                (t_len - 1) * b_len,
                &mut d_w,
                true,
                MatRef::transposed(&d_gates[b_len * 4 * h..], 4 * h),
                MatRef::rows(&hs[..(t_len - 1) * bh], h),
            );
        }
        let mut d_hc0 = dh_next;
        d_hc0.extend_from_slice(&dc_next);
        (d_gates, d_w, d_hc0)
    }
}

impl CustomOp3 for LstmLayerOp {
    fn name(&self) -> &'static str {
        "lstm-layer"
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
        let xw = cpu_f32(s1, l1, "xw").map_err(candle_core::Error::wrap)?;
        let w_hh = cpu_f32(s2, l2, "w_hh").map_err(candle_core::Error::wrap)?;
        let hc0 = cpu_f32(s3, l3, "hc0").map_err(candle_core::Error::wrap)?;
        let out = self.forward(xw, w_hh, hc0);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }

    fn bwd(
        &self,
        _xw: &Tensor,
        w_hh: &Tensor,
        hc0: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (t_len, b_len, h) = self.sizes();
        let w_hh = w_hh.contiguous()?;
        let hc0 = hc0.contiguous()?;
        let res = res.contiguous()?;
        let grad_res = grad_res.contiguous()?;
        let (d_xw, d_w, d_hc0) = {
            let (ws, wl) = w_hh.storage_and_layout();
            let (hs, hl) = hc0.storage_and_layout();
            let (rs, rl) = res.storage_and_layout();
            let (gs, gl) = grad_res.storage_and_layout();
            let wrap = candle_core::Error::wrap;
            self.backward(
                storage_f32(&ws, wl, "w_hh").map_err(wrap)?,
                storage_f32(&hs, hl, "hc0").map_err(wrap)?,
                storage_f32(&rs, rl, "lstm output").map_err(wrap)?,
                storage_f32(&gs, gl, "lstm output gradient").map_err(wrap)?,
            )
        };
        let dev = res.device();
        Ok((
            Some(Tensor::from_vec(d_xw, (t_len, b_len, 4 * h), dev)?),
            Some(Tensor::from_vec(d_w, (4 * h, h), dev)?),
            Some(Tensor::from_vec(d_hc0, (2, b_len, h), dev)?),
        ))
    }
}

/// One row of one BPTT step. In: the activated gates `g (4H)`, the cell `c` and the previous
/// cell `cp`, the gradients arriving from outside (`dhe`, `dce`) and from step t+1 (`dhn`,
/// `dcn`). Out: the gate gradients `dg` (pre-activation), and in `dcn` the gradient for the
/// previous cell; `dhn` is zeroed for the `dgates . W_hh` product to fill.
#[allow(clippy::too_many_arguments)]
fn cell_backward(
    dg: &mut [f32],
    dhn: &mut [f32],
    dcn: &mut [f32],
    g: &[f32],
    c: &[f32],
    cp: &[f32],
    dhe: &[f32],
    dce: &[f32],
) {
    let h = c.len();
    // tanh(c) goes into dg's output-gate slot, which element j overwrites only after reading
    // it (no buffer per row and step).
    let tc = &mut dg[3 * h..];
    tc.copy_from_slice(c);
    tanh_in_place(tc);
    for j in 0..h {
        let dh = dhe[j] + dhn[j];
        let dc_in = dce[j] + dcn[j];
        let (i, f, gg, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
        let tc = dg[3 * h + j];
        let dc = dc_in + dh * o * (1.0 - tc * tc);
        dg[j] = dc * gg * i * (1.0 - i);
        dg[h + j] = dc * cp[j] * f * (1.0 - f);
        dg[2 * h + j] = dc * i * (1.0 - gg * gg);
        dg[3 * h + j] = dh * tc * o * (1.0 - o);
        dcn[j] = dc * f;
        dhn[j] = 0.0;
    }
}

/// The per-step recurrent product `out += x (B, K) . wᵀ` with `w (N, K)` laid out once per
/// sequence: packed panels for batches of 6 rows or more, `rowdot` on `w` in place below.
struct Recurrent<'a> {
    w: &'a [f32],
    n: usize,
    packed: Option<PackedWt>,
}

impl<'a> Recurrent<'a> {
    fn new(w: &'a [f32], n: usize, batch: usize) -> Self {
        let packed = (batch >= 6).then(|| PackedWt::new(w, n, w.len() / n));
        Recurrent { w, n, packed }
    }

    fn add_product(&self, x: &[f32], out: &mut [f32]) {
        let m = out.len() / self.n;
        match &self.packed {
            Some(p) => p.matmul((x, &[]), m, None, out, true),
            None => matmul_wt(x, m, self.w, self.n, None, out, true),
        }
    }
}
