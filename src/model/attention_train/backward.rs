//! The attention decoder's backward pass (`AttentionTape::backward`): the steps in reverse,
//! each layer's gate gradients through `cell_backward`, two packed products per layer and
//! step, the attention's softmax and memory gradients per row; every weight's gradient as
//! one product over all steps at the end.

use rayon::prelude::*;

use super::{
    multiply, packed_t, AttentionGrads, AttentionTape, AttentionWeights, LayerWeights, Sizes,
    PARALLEL_FROM,
};
use crate::kernels::{gemm_new, weight_grads, MatRef, Operand, PackedWt};
use crate::model::lstm::fused_layer::cell_backward;

impl AttentionTape {
    /// The backward pass from `d_out (T * B, H)`, the gradient of `out`.
    pub fn backward(
        &self,
        layers: &[LayerWeights],
        att: &AttentionWeights,
        d_out: &[f32],
    ) -> AttentionGrads {
        let Sizes {
            steps: t_len,
            batch: b,
            source: s_len,
            hidden: h,
            emb: e,
        } = self.n;
        let (bh, nl) = (b * h, layers.len());
        let inputs: Vec<usize> = layers.iter().map(|l| l.w_ih.len() / (4 * h)).collect();
        let ih_t: Vec<PackedWt> = layers
            .iter()
            .zip(&inputs)
            .map(|(l, &i)| packed_t(&l.w_ih, i))
            .collect();
        let hh_t: Vec<PackedWt> = layers.iter().map(|l| packed_t(&l.w_hh, h)).collect();
        let out_t = packed_t(&att.w_out, 2 * h);
        let in_t = att.w_in.as_ref().map(|w| packed_t(w, h));
        let mut d_gates = vec![vec![0f32; t_len * b * 4 * h]; nl];
        let mut d_vec = vec![0f32; t_len * bh];
        let mut d_query = vec![0f32; if in_t.is_some() { t_len * bh } else { 0 }];
        let mut d_mem = vec![0f32; b * s_len * h];
        let mut d_y = vec![0f32; t_len * b * e];
        let mut dh_next = vec![vec![0f32; bh]; nl];
        let mut dc_next = vec![vec![0f32; bh]; nl];
        let mut d_feed = vec![0f32; bh];
        let mut d_z = vec![0f32; b * 2 * h];
        for t in (0..t_len).rev() {
            // The attentional vector fed the output layer and step t+1's input.
            let dv = &mut d_vec[t * bh..][..bh];
            dv.iter_mut()
                .zip(&d_out[t * bh..][..bh])
                .zip(&d_feed)
                .for_each(|((g, a), f)| *g = a + f);
            if let Some(m) = &self.out_mask {
                multiply(dv, &m[t * bh..][..bh]);
            }
            let v = &self.vectors[t * bh..][..bh];
            dv.iter_mut().zip(v).for_each(|(g, v)| *g *= 1.0 - v * v);
            out_t.matmul((dv, &[]), b, None, &mut d_z, false);
            let top = &self.hs[nl - 1][t * bh..][..bh];
            let query = match &in_t {
                Some(_) => &self.queries[t * bh..][..bh],
                None => top,
            };
            let mut dq = vec![0f32; bh];
            self.attend_backward(t, query, &d_z, &mut dq, &mut d_mem);
            // The top layer's h: through [c | h] directly, and through the query.
            let mut ext: Vec<f32> = d_z
                .chunks_exact(2 * h)
                .flat_map(|r| &r[h..])
                .copied()
                .collect();
            match &in_t {
                Some(w) => {
                    w.matmul((&dq, &[]), b, None, &mut ext, true);
                    d_query[t * bh..][..bh].copy_from_slice(&dq);
                }
                None => ext.iter_mut().zip(&dq).for_each(|(a, q)| *a += q),
            }
            for k in (0..nl).rev() {
                let dg_t = &mut d_gates[k][t * b * 4 * h..][..b * 4 * h];
                let g_t = &self.gates[k][t * b * 4 * h..][..b * 4 * h];
                let c_t = &self.cs[k][t * bh..][..bh];
                let c_prev = if t == 0 {
                    &self.hc0[k][bh..]
                } else {
                    &self.cs[k][(t - 1) * bh..t * bh]
                };
                dg_t.par_chunks_mut(4 * h)
                    .zip(
                        dh_next[k]
                            .par_chunks_mut(h)
                            .zip(dc_next[k].par_chunks_mut(h)),
                    )
                    .zip(
                        g_t.par_chunks(4 * h)
                            .zip(c_t.par_chunks(h))
                            .zip(c_prev.par_chunks(h).zip(ext.par_chunks(h))),
                    )
                    .with_min_len((PARALLEL_FROM / h).max(1))
                    .for_each(|((dg, (dhn, dcn)), ((g, c), (cp, dhe)))| {
                        cell_backward(dg, dhn, dcn, g, c, cp, dhe)
                    });
                hh_t[k].matmul((dg_t, &[]), b, None, &mut dh_next[k], true);
                let mut dx = vec![0f32; b * inputs[k]];
                ih_t[k].matmul((dg_t, &[]), b, None, &mut dx, false);
                if k > 0 {
                    if let Some(m) = &self.in_mask[k] {
                        multiply(&mut dx, &m[t * bh..][..bh]);
                    }
                    ext = dx;
                } else {
                    for r in 0..b {
                        let row = &dx[r * (e + h)..][..e + h];
                        d_y[(t * b + r) * e..][..e].copy_from_slice(&row[..e]);
                        d_feed[r * h..][..h].copy_from_slice(&row[e..]);
                    }
                }
            }
        }
        let layer_grads = (0..nl)
            .map(|k| {
                let input = if k == 0 || !self.x[k].is_empty() {
                    &self.x[k][..]
                } else {
                    &self.hs[k - 1][..]
                };
                let x_rows = Operand {
                    pieces: (input, &[]),
                    n: inputs[k],
                    skip: 0,
                };
                let later = t_len.saturating_sub(1) * bh;
                let h_prev = Operand {
                    pieces: (&self.hc0[k][..bh], &self.hs[k][..later]),
                    n: h,
                    skip: 0,
                };
                let ([d_ih, d_hh], d_b) = weight_grads(&d_gates[k], 4 * h, [x_rows, h_prev]);
                (d_ih, d_hh, d_b)
            })
            .collect();
        let top_all = &self.hs[nl - 1];
        let ([d_ctx, d_top], _) = weight_grads(
            &d_vec,
            h,
            [
                Operand {
                    pieces: (&self.contexts, &[]),
                    n: h,
                    skip: 0,
                },
                Operand {
                    pieces: (top_all, &[]),
                    n: h,
                    skip: 0,
                },
            ],
        );
        let mut w_out = Vec::with_capacity(2 * h * h);
        for i in 0..h {
            w_out.extend_from_slice(&d_ctx[i * h..][..h]);
            w_out.extend_from_slice(&d_top[i * h..][..h]);
        }
        let w_in = in_t.map(|_| {
            gemm_new(
                h,
                h,
                t_len * b,
                MatRef::transposed(&d_query, h),
                MatRef::rows(top_all, h),
            )
        });
        let init = (0..nl)
            .map(|k| {
                let mut hc = std::mem::take(&mut dh_next[k]);
                hc.extend_from_slice(&dc_next[k]);
                hc
            })
            .collect();
        AttentionGrads {
            layers: layer_grads,
            w_in,
            w_out,
            y: d_y,
            init,
            memory: time_major(&d_mem, s_len, b, h),
        }
    }

    /// Step t's attention backward for every row: from `d_z (B, 2H)` (its first half the
    /// contexts' gradient), the queries' gradient into `dq (B, H)` and the memory's added
    /// into `d_mem (B, S, H)`.
    fn attend_backward(
        &self,
        t: usize,
        query: &[f32],
        d_z: &[f32],
        dq: &mut [f32],
        d_mem: &mut [f32],
    ) {
        let (b, s_len, h) = (self.n.batch, self.n.source, self.n.hidden);
        let a_t = &self.weights[t * b * s_len..][..b * s_len];
        let rows = dq
            .par_chunks_mut(h)
            .zip(d_mem.par_chunks_mut(s_len * h))
            .enumerate();
        rows.with_min_len((PARALLEL_FROM / (s_len * h).max(1)).max(1))
            .for_each(|(r, (dq, dm))| {
                let mem = &self.memory[r * s_len * h..][..s_len * h];
                let a = &a_t[r * s_len..][..s_len];
                let dctx = &d_z[r * 2 * h..][..h];
                let q = &query[r * h..][..h];
                // d a_s = dctx . m_s; d score_s = a_s (d a_s - sum_j a_j d a_j).
                let da: Vec<f32> = mem
                    .chunks_exact(h)
                    .map(|m| m.iter().zip(dctx).map(|(x, y)| x * y).sum())
                    .collect();
                let mean: f32 = a.iter().zip(&da).map(|(w, d)| w * d).sum();
                for (s, (m, dm)) in mem.chunks_exact(h).zip(dm.chunks_exact_mut(h)).enumerate() {
                    let (w, ds) = (a[s], a[s] * (da[s] - mean));
                    if w == 0.0 {
                        continue;
                    }
                    for j in 0..h {
                        dm[j] += w * dctx[j] + ds * q[j];
                        dq[j] += ds * m[j];
                    }
                }
            });
    }
}

/// `(B, S, H)` -> `(S, B, H)` time-major.
fn time_major(x: &[f32], s: usize, b: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for r in 0..b {
        for p in 0..s {
            out[(p * b + r) * h..][..h].copy_from_slice(&x[(r * s + p) * h..][..h]);
        }
    }
    out
}
