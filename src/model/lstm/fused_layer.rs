//! One LSTM layer on the CPU in a single call (the training step's LSTM; `candle_op` wraps it
//! as a Candle custom op): the whole time loop inside (one
//! packed product per step for [x_t | h_{t-1}] . [W_ih | W_hh]ᵀ, the gate arithmetic split
//! over the batch rows on every core with vectorised activations), and
//! a hand-written BPTT whose weight, bias and input gradients are whole-sequence gemms and
//! sums. Nothing but the layer's h sequence and last c enters Candle's graph, so its backward
//! pass builds no full-size temporaries for the gates. `LstmLayer` falls back to plain
//! Candle ops elsewhere (`reference`, the GPU path).

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::cell::lstm_cell;
use super::weights::Weights;
use crate::kernels::vexp::tanh_in_place;
use crate::kernels::{gemm_new, matmul_wt, scratch, weight_grads, MatRef, Operand, PackedWt};

thread_local! {
    /// The gate gradients of the last `backward` on this thread, kept for the next.
    static D_GATES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The fused layer. Inputs: `x (T, B, I)`; `w (4H, I + H + 1)` = `[W_ih | W_hh | b_ih + b_hh]`,
/// PyTorch's weights side by side; `hc0 (2, B, H)` = [h0, c0].
///
/// Output: `T * B * H + B * H` floats, every step's h `(T, B, H)` then the last step's c
/// `(B, H)`. The cells and activated gates of every step stay in the op for the backward pass.
pub struct LstmLayerOp {
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
    /// `(T * B)` flags: 1.0 where step t of row b is a real token, 0.0 where it is padding
    /// (the state then passes through unchanged). `None`: every step is real.
    pub mask: Option<Arc<[f32]>>,
    /// Whether `backward` computes the gradient of `[h0 | c0]` (on unless turned off: the
    /// encoder's zero start needs none, and its h part costs one step's `dgates . W_hh`).
    pub initial_state_grad: bool,
    pub(super) saved: Mutex<Option<Activations>>,
}

/// What the backward pass needs besides the inputs and the h sequence: `c (T, B, H)` and
/// the activated gates `(T, B, 4H)` (zero on padding).
pub struct Activations {
    pub cs: Vec<f32>,
    pub gates: Vec<f32>,
}

/// The gradients of the op's inputs: `x` and `hc0` laid out as the inputs, the weight block
/// as its parts `W_ih (4H, I)`, `W_hh (4H, H)` and `b (4H)` (PyTorch's parameters' layouts;
/// both biases get `b`); `hc0` is empty when the op's `initial_state_grad` is off.
pub struct LayerGrads {
    pub x: Vec<f32>,
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub b: Vec<f32>,
    pub hc0: Vec<f32>,
}

impl LstmLayerOp {
    pub fn new(steps: usize, batch: usize, hidden: usize, mask: Option<Arc<[f32]>>) -> Self {
        LstmLayerOp {
            steps,
            batch,
            hidden,
            mask,
            initial_state_grad: true,
            saved: Mutex::new(None),
        }
    }

    fn sizes(&self) -> (usize, usize, usize) {
        (self.steps, self.batch, self.hidden)
    }

    fn valid(&self, t: usize, b: usize) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| m[t * self.batch + b] != 0.0)
    }

    /// Runs the layer: the output described on the type, and the activations to keep.
    pub fn forward(&self, x: &[f32], w: &Weights, hc0: &[f32]) -> (Vec<f32>, Activations) {
        let (t_len, b_len, h) = self.sizes();
        let (bh, tb) = (b_len * h, t_len * b_len);
        let tbh = t_len * bh;
        assert_eq!(w.bias.len(), 4 * h, "w size");
        let input = w.input;
        assert_eq!(x.len(), tb * input, "x size");
        assert_eq!(hc0.len(), 2 * bh, "hc0 size");
        // Each step's gates in one packed product, [x_t | h_{t-1}] . [W_ih | W_hh]ᵀ + b, written
        // while they are about to be used (no (T * B, 4H) pass ahead of the time loop).
        let bias = &w.bias;
        let both = Recurrent::new(&[(w.w_ih, input), (w.w_hh, h)], 4 * h, b_len);
        let step = b_len * 4 * h;
        // Every element is written below (the gates by each step's product, h and c by its
        // cells, the last c after the loop): stale buffers, no zero fill (`scratch`).
        let mut gates = scratch::take(tb * 4 * h);
        let mut out = scratch::take(tbh + bh);
        let mut cs = scratch::take(tbh);
        let hs = &mut out[..tbh];
        let (h0, c0) = hc0.split_at(bh);
        // From a zero h0 (the encoder's start) the first step's W_hh half adds nothing.
        let zero_start = h0.iter().all(|&v| v == 0.0);
        for t in 0..t_len {
            let g_t = &mut gates[t * step..(t + 1) * step];
            let (h_done, h_rest) = hs.split_at_mut(t * bh);
            let (c_done, c_rest) = cs.split_at_mut(t * bh);
            let (h_prev, c_prev) = if t == 0 {
                (h0, c0)
            } else {
                (&h_done[(t - 1) * bh..], &c_done[(t - 1) * bh..])
            };
            let x_t = &x[t * b_len * input..(t + 1) * b_len * input];
            let h_in = if t == 0 && zero_start {
                &[][..]
            } else {
                &h_prev[..bh]
            };
            both.product((x_t, h_in), Some(bias), g_t, false);
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
        if t_len > 0 {
            out[tbh..].copy_from_slice(&cs[tbh - bh..]);
        } else {
            out[tbh..].copy_from_slice(c0);
        }
        (out, Activations { cs, gates })
    }

    /// BPTT. `x`, `w`, `hc0` as given to `forward`, `out` and `act` what it returned, `d_out`
    /// the gradient of `out`.
    pub fn backward(
        &self,
        x: &[f32],
        w: &Weights,
        hc0: &[f32],
        out: &[f32],
        act: &Activations,
        d_out: &[f32],
    ) -> LayerGrads {
        let (t_len, b_len, h) = self.sizes();
        let (bh, tb) = (b_len * h, t_len * b_len);
        let tbh = t_len * bh;
        let input = w.input;
        let hs = &out[..tbh];
        let (cs, gates) = (&act.cs, &act.gates);
        let (dh_ext, dc_last) = d_out.split_at(tbh);
        let (h0, c0) = hc0.split_at(bh);
        // BPTT writes every element (padding rows as zeros), so the buffer of the last call
        // is reused as it is: no 10 MB zero fill per layer at 512.
        let mut d_gates = D_GATES.take();
        d_gates.resize(tb * 4 * h, 0.0);
        let mut dh_next = vec![0f32; bh];
        let mut dc_next = dc_last.to_vec();
        // W_hh^T (H, 4H), so that dh_{t-1} = dgates_t . (W_hh^T)^T is the same product.
        let recurrent_t = Recurrent::new(&[(w.hh_t(), 4 * h)], h, b_len);
        for t in (0..t_len).rev() {
            let dg_t = &mut d_gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            let g_t = &gates[t * b_len * 4 * h..(t + 1) * b_len * 4 * h];
            let c_t = &cs[t * bh..(t + 1) * bh];
            let c_prev = if t == 0 {
                c0
            } else {
                &cs[(t - 1) * bh..t * bh]
            };
            let dh_t = &dh_ext[t * bh..(t + 1) * bh];
            dg_t.par_chunks_mut(4 * h)
                .zip(dh_next.par_chunks_mut(h).zip(dc_next.par_chunks_mut(h)))
                .zip(
                    g_t.par_chunks(4 * h)
                        .zip(c_t.par_chunks(h))
                        .zip(c_prev.par_chunks(h).zip(dh_t.par_chunks(h))),
                )
                .enumerate()
                .with_min_len(8)
                .for_each(|(b, ((dg, (dhn, dcn)), ((g, c), (cp, dhe))))| {
                    if self.valid(t, b) {
                        cell_backward(dg, dhn, dcn, g, c, cp, dhe);
                    } else {
                        // Padding passed the state through: so does its gradient.
                        dhn.iter_mut().zip(dhe).for_each(|(a, b)| *a += b);
                        dg.fill(0.0);
                    }
                });
            // dh_{t-1} += dgates_t . W_hh   (B, 4H) x (4H, H); at t = 0 that is h0's.
            if t > 0 || self.initial_state_grad {
                recurrent_t.product((dg_t, &[]), None, &mut dh_next, true);
            }
        }
        // dW_ih = dgatesᵀ . x and dW_hh = dgatesᵀ . h_prev over every step, and db, in one
        // pass over dgates. h_prev is h0, then every step's h but the last; a zero h0 (the
        // encoder's start) adds nothing and is skipped.
        let later = t_len.saturating_sub(1) * b_len;
        let h_prev = if h0.iter().all(|&v| v == 0.0) {
            Operand {
                pieces: (&hs[..later * h], &[]),
                n: h,
                skip: b_len.min(tb),
            }
        } else {
            Operand {
                pieces: (h0, &hs[..later * h]),
                n: h,
                skip: 0,
            }
        };
        let x_rows = Operand {
            pieces: (x, &[]),
            n: input,
            skip: 0,
        };
        let ([d_ih, d_hh], d_b) = weight_grads(&d_gates, 4 * h, [x_rows, h_prev]);
        // dx = dgates . W_ih.
        let d_x = gemm_new(tb, input, 4 * h, MatRef::rows(&d_gates, 4 * h), w.w_ih);
        D_GATES.set(d_gates);
        let mut d_hc0 = Vec::new();
        if self.initial_state_grad {
            d_hc0 = dh_next;
            d_hc0.extend_from_slice(&dc_next);
        }
        LayerGrads {
            x: d_x,
            w_ih: d_ih,
            w_hh: d_hh,
            b: d_b,
            hc0: d_hc0,
        }
    }
}

/// One row of one BPTT step. In: the activated gates `g (4H)`, the cell `c` and the previous
/// cell `cp`, the gradient of h arriving from outside (`dhe`) and from step t+1 (`dhn`, `dcn`).
/// Out: the gate gradients `dg` (pre-activation), and in `dcn` the gradient for the previous
/// cell; `dhn` is zeroed for the `dgates . W_hh` product to fill.
pub fn cell_backward(
    dg: &mut [f32],
    dhn: &mut [f32],
    dcn: &mut [f32],
    g: &[f32],
    c: &[f32],
    cp: &[f32],
    dhe: &[f32],
) {
    let h = c.len();
    // tanh(c) goes into dg's output-gate slot, which element j overwrites only after reading
    // it (no buffer per row and step).
    let tc = &mut dg[3 * h..];
    tc.copy_from_slice(c);
    tanh_in_place(tc);
    for j in 0..h {
        let dh = dhe[j] + dhn[j];
        let (i, f, gg, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
        let tc = dg[3 * h + j];
        let dc = dcn[j] + dh * o * (1.0 - tc * tc);
        dg[j] = dc * gg * i * (1.0 - i);
        dg[h + j] = dc * cp[j] * f * (1.0 - f);
        dg[2 * h + j] = dc * i * (1.0 - gg * gg);
        dg[3 * h + j] = dh * tc * o * (1.0 - o);
        dcn[j] = dc * f;
        dhn[j] = 0.0;
    }
}

/// A per-step product `x (B, K) . wᵀ` with `w (N, K)` laid out once per sequence: packed
/// panels for batches of 6 rows or more, `rowdot` on a row-major copy below.
enum Recurrent {
    Packed(PackedWt),
    Rows { w: Vec<f32>, n: usize },
}

impl Recurrent {
    /// `w = [w_0 | w_1 | ...] (n, k_0 + k_1 + ...)` from views of its column blocks.
    fn new(parts: &[(MatRef, usize)], n: usize, batch: usize) -> Self {
        if batch >= 6 {
            return Recurrent::Packed(PackedWt::from_views(parts, n));
        }
        let rows = (0..n)
            .flat_map(|r| {
                parts
                    .iter()
                    .flat_map(move |&(w, k)| (0..k).map(move |c| w.data[r * w.rs + c * w.cs]))
            })
            .collect();
        Recurrent::Rows { w: rows, n }
    }

    /// `out = [out +] x . wᵀ [+ bias]`, with the rows of `x = [x.0 | x.1]` given in two
    /// column blocks (`x.1` may be empty; columns past both count as zeros).
    fn product(&self, x: (&[f32], &[f32]), bias: Option<&[f32]>, out: &mut [f32], acc: bool) {
        match self {
            Recurrent::Packed(p) => p.matmul(x, out.len() / p.n(), bias, out, acc),
            Recurrent::Rows { w, n } => {
                let m = out.len() / n;
                let k = w.len() / (*n).max(1);
                if x.1.is_empty() && x.0.len() == m * k {
                    return matmul_wt(x.0, m, w, *n, bias, out, acc);
                }
                // Under six rows: the two blocks side by side in a small copy, zeros past
                // them (a narrower x).
                let (ka, kb) = (x.0.len() / m.max(1), x.1.len() / m.max(1));
                let joined: Vec<f32> = (0..m)
                    .flat_map(|r| {
                        x.0[r * ka..(r + 1) * ka]
                            .iter()
                            .chain(&x.1[r * kb..(r + 1) * kb])
                            .chain(std::iter::repeat_n(&0.0, k - ka - kb))
                    })
                    .copied()
                    .collect();
                matmul_wt(&joined, m, w, *n, bias, out, acc)
            }
        }
    }
}
