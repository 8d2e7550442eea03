//! One LSTM layer as a single Candle custom op on the CPU: the whole time loop runs inside,
//! one gemm per step for h . W_hh^T, and the backward pass is hand-written BPTT with one big
//! gemm for dW_hh. `lstm::LstmLayer` falls back to plain Candle ops elsewhere (GPU).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::kernels::{cpu_f32, gemm, sigmoid, storage_f32, tanh, MatRef};

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
        let (h0, c0) = hc0.split_at(bh);
        for t in 0..t_len {
            let g_t = &mut gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            g_t.copy_from_slice(&xw[t * b_len * 4 * h..(t + 1) * b_len * 4 * h]);
            let h_prev = if t == 0 {
                h0
            } else {
                &hc[(t - 1) * bh..t * bh]
            };
            gemm(
                b_len,
                4 * h,
                h,
                g_t,
                true,
                MatRef::rows(h_prev, h),
                MatRef::transposed(w_hh, h),
            );
            for b in 0..b_len {
                let valid = self.valid(t, b);
                let row = &mut g_t[b * 4 * h..(b + 1) * 4 * h];
                for j in 0..h {
                    let at = t * bh + b * h + j;
                    let (hp, cp) = if t == 0 {
                        (h0[b * h + j], c0[b * h + j])
                    } else {
                        (hc[at - bh], hc[tbh + at - bh])
                    };
                    if !valid {
                        hc[at] = hp;
                        hc[tbh + at] = cp;
                        row[j] = 0.0;
                        row[h + j] = 0.0;
                        row[2 * h + j] = 0.0;
                        row[3 * h + j] = 0.0;
                        continue;
                    }
                    let i = sigmoid(row[j]);
                    let f = sigmoid(row[h + j]);
                    let g = tanh(row[2 * h + j]);
                    let o = sigmoid(row[3 * h + j]);
                    let c = f * cp + i * g;
                    hc[at] = o * tanh(c);
                    hc[tbh + at] = c;
                    row[j] = i;
                    row[h + j] = f;
                    row[2 * h + j] = g;
                    row[3 * h + j] = o;
                }
            }
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
        for t in (0..t_len).rev() {
            let dg_t = &mut d_gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            for b in 0..b_len {
                let valid = self.valid(t, b);
                let g_row = &gates[(t * b_len + b) * 4 * h..(t * b_len + b + 1) * 4 * h];
                let dg_row = &mut dg_t[b * 4 * h..(b + 1) * 4 * h];
                for j in 0..h {
                    let at = t * bh + b * h + j;
                    let dh = dh_ext[at] + dh_next[b * h + j];
                    let dc_in = dc_ext[at] + dc_next[b * h + j];
                    if !valid {
                        // Padding passed the state through: so does its gradient.
                        dh_next[b * h + j] = dh;
                        dc_next[b * h + j] = dc_in;
                        continue;
                    }
                    let cp = if t == 0 { c0[b * h + j] } else { cs[at - bh] };
                    let (i, f, g, o) = (g_row[j], g_row[h + j], g_row[2 * h + j], g_row[3 * h + j]);
                    let tc = tanh(cs[at]);
                    let dc = dc_in + dh * o * (1.0 - tc * tc);
                    dg_row[j] = dc * g * i * (1.0 - i);
                    dg_row[h + j] = dc * cp * f * (1.0 - f);
                    dg_row[2 * h + j] = dc * i * (1.0 - g * g);
                    dg_row[3 * h + j] = dh * tc * o * (1.0 - o);
                    dc_next[b * h + j] = dc * f;
                    dh_next[b * h + j] = 0.0;
                }
            }
            // dh_{t-1} += dgates_t . W_hh   (B, 4H) x (4H, H)
            gemm(
                b_len,
                h,
                4 * h,
                &mut dh_next,
                true,
                MatRef::rows(dg_t, 4 * h),
                MatRef::rows(w_hh, h),
            );
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
