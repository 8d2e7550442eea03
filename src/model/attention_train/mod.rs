//! The attention decoder of the CPU training step (`train_step`), on plain buffers: input
//! feeding makes step t's input depend on step t-1's attentional vector, so the decoder runs
//! step by step through all its layers, not layer by layer like the encoder. Per step and
//! layer: one packed product `[x_t | h_{t-1}] . [W_ih | W_hh]ᵀ` and the cells; then the
//! attention over the encoder's top outputs and `h~_t = tanh(W_c [c_t | h_t])`. The backward
//! pass walks the steps in reverse with two packed products per layer and step (the input's
//! and the previous h's gradients); the weights' gradients are one product per weight over
//! all steps at the end. `Seq2Seq::forward_train` (Candle ops and autograd) is the
//! reference the tests hold this to, dropout masks drawn in the same order.

mod backward;
pub mod pass;

use rayon::prelude::*;

use super::dropout::Dropout;
use super::lstm::cell::lstm_cell;
use crate::kernels::vexp::{exp_in_place, tanh_in_place};
use crate::kernels::{MatRef, PackedWt};

/// One decoder layer's weights, copied out of its tensors: `w_ih (4H, I)`, `w_hh (4H, H)`
/// row-major and `b = b_ih + b_hh (4H)`.
pub struct LayerWeights {
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The attention's weights: `w_in (H, H)` for `general`, `w_out (H, 2H)`.
pub struct AttentionWeights {
    pub w_in: Option<Vec<f32>>,
    pub w_out: Vec<f32>,
}

/// The sizes of a batch: target steps, rows, source positions, hidden and embedding sizes.
#[derive(Clone, Copy)]
pub struct Sizes {
    pub steps: usize,
    pub batch: usize,
    pub source: usize,
    pub hidden: usize,
    pub emb: usize,
}

/// What the forward pass keeps for the backward pass.
pub struct AttentionTape {
    n: Sizes,
    /// Per layer: its input `(T, B, I)` (layer 0: `[y_t | feed_{t-1}]`; above: the dropped
    /// h of the layer below, empty without dropout), h and c `(T, B, H)`, the activated
    /// gates `(T, B, 4H)`, `[h0 | c0]` and the dropout mask of its input.
    x: Vec<Vec<f32>>,
    hs: Vec<Vec<f32>>,
    cs: Vec<Vec<f32>>,
    gates: Vec<Vec<f32>>,
    hc0: Vec<Vec<f32>>,
    in_mask: Vec<Option<Vec<f32>>>,
    /// The encoder's top outputs `(B, S, H)` and which positions are real `(B, S)`.
    memory: Vec<f32>,
    valid: Vec<bool>,
    /// `general`'s queries `(T, B, H)` (for `dot` the query is the top h).
    queries: Vec<f32>,
    /// Attention weights `(T, B, S)`, contexts and attentional vectors `(T, B, H)`, the
    /// vectors' dropout mask.
    weights: Vec<f32>,
    contexts: Vec<f32>,
    vectors: Vec<f32>,
    out_mask: Option<Vec<f32>>,
    /// What the output layer reads: the dropped attentional vectors `(T * B, H)`.
    pub out: Vec<f32>,
}

/// The gradients the backward pass returns.
pub struct AttentionGrads {
    /// Per decoder layer: `W_ih`, `W_hh`, `b`.
    pub layers: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    pub w_in: Option<Vec<f32>>,
    pub w_out: Vec<f32>,
    /// The dropped target embeddings' gradient `(T, B, E)`.
    pub y: Vec<f32>,
    /// Per layer, the gradient of `[h0 | c0]` (the encoder's final state).
    pub init: Vec<Vec<f32>>,
    /// The gradient of the encoder's top outputs, time-major `(S, B, H)`.
    pub memory: Vec<f32>,
}

/// `x (rows, K) . wᵀ` against a matrix packed once per batch.
fn packed(w: &[f32], n: usize) -> PackedWt {
    PackedWt::new(w, n, w.len() / n.max(1))
}

/// The transpose of a row-major `w (rows, cols)`, packed: `x . w` as a product.
fn packed_t(w: &[f32], cols: usize) -> PackedWt {
    PackedWt::from_view(MatRef::transposed(w, cols), cols, w.len() / cols.max(1))
}

/// `(S, B, H)` time-major -> `(B, S, H)`.
fn batch_major(x: &[f32], s: usize, b: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for p in 0..s {
        for r in 0..b {
            out[(r * s + p) * h..][..h].copy_from_slice(&x[(p * b + r) * h..][..h]);
        }
    }
    out
}

fn multiply(x: &mut [f32], by: &[f32]) {
    x.iter_mut().zip(by).for_each(|(a, b)| *a *= b);
}

/// Rows from which a step's per-row work is split over the cores.
const PARALLEL_FROM: usize = 4096;

/// The forward pass. `y (T, B, E)`: the target embeddings, already dropped out; `init`: each
/// layer's `[h0 | c0] (2, B, H)`; `memory (S, B, H)` time-major and `valid (S * B)` flags
/// (None: every position real).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    layers: &[LayerWeights],
    att: &AttentionWeights,
    n: Sizes,
    y: &[f32],
    init: &[Vec<f32>],
    memory: &[f32],
    valid: Option<&[f32]>,
    dropout: &mut Option<&mut Dropout>,
) -> AttentionTape {
    let Sizes {
        steps: t_len,
        batch: b,
        source: s_len,
        hidden: h,
        emb: e,
    } = n;
    let bh = b * h;
    let memory = batch_major(memory, s_len, b, h);
    let valid: Vec<bool> = (0..b * s_len)
        .map(|i| valid.is_none_or(|v| v[(i % s_len) * b + i / s_len] != 0.0))
        .collect();
    let fwd: Vec<PackedWt> = layers
        .iter()
        .map(|l| {
            let input = l.w_ih.len() / (4 * h);
            PackedWt::from_views(
                &[
                    (MatRef::rows(&l.w_ih, input), input),
                    (MatRef::rows(&l.w_hh, h), h),
                ],
                4 * h,
            )
        })
        .collect();
    let w_in = att.w_in.as_ref().map(|w| packed(w, h));
    let w_out = packed(&att.w_out, h);
    let nl = layers.len();
    let mut tape = AttentionTape {
        n,
        x: (0..nl)
            .map(|k| vec![0f32; if k == 0 { t_len * b * (e + h) } else { 0 }])
            .collect(),
        hs: vec![vec![0f32; t_len * bh]; nl],
        cs: vec![vec![0f32; t_len * bh]; nl],
        gates: vec![vec![0f32; t_len * b * 4 * h]; nl],
        hc0: init.to_vec(),
        in_mask: vec![None; nl],
        memory,
        valid,
        queries: vec![0f32; if w_in.is_some() { t_len * bh } else { 0 }],
        weights: vec![0f32; t_len * b * s_len],
        contexts: vec![0f32; t_len * bh],
        vectors: vec![0f32; t_len * bh],
        out_mask: None,
        out: vec![0f32; t_len * bh],
    };
    let mut layer_masks: Vec<Vec<f32>> = vec![Vec::new(); nl];
    let mut out_mask = Vec::new();
    for t in 0..t_len {
        // Layer 0 reads [y_t | the last attentional vector].
        for r in 0..b {
            let row = &mut tape.x[0][(t * b + r) * (e + h)..][..e + h];
            row[..e].copy_from_slice(&y[(t * b + r) * e..][..e]);
            if t > 0 {
                row[e..].copy_from_slice(&tape.out[((t - 1) * b + r) * h..][..h]);
            }
        }
        for k in 0..nl {
            let (done, rest) = tape.hs.split_at_mut(k);
            let mut dropped = Vec::new();
            let input: &[f32] = if k == 0 {
                &tape.x[0][t * b * (e + h)..][..b * (e + h)]
            } else {
                let below = &done[k - 1][t * bh..][..bh];
                match dropout.as_deref_mut().and_then(|d| d.mask(bh)) {
                    Some(m) => {
                        dropped = below.to_vec();
                        multiply(&mut dropped, &m);
                        layer_masks[k].extend_from_slice(&m);
                        &dropped
                    }
                    None => below,
                }
            };
            let (hs, cs) = (&mut rest[0], &mut tape.cs[k]);
            let (h_prev, c_prev): (Vec<f32>, Vec<f32>) = if t == 0 {
                (init[k][..bh].to_vec(), init[k][bh..].to_vec())
            } else {
                (
                    hs[(t - 1) * bh..t * bh].to_vec(),
                    cs[(t - 1) * bh..t * bh].to_vec(),
                )
            };
            let g = &mut tape.gates[k][t * b * 4 * h..][..b * 4 * h];
            fwd[k].matmul((input, &h_prev), b, Some(&layers[k].bias), g, false);
            let (h_t, c_t) = (&mut hs[t * bh..][..bh], &mut cs[t * bh..][..bh]);
            g.par_chunks_mut(4 * h)
                .zip(c_prev.par_chunks(h))
                .zip(c_t.par_chunks_mut(h).zip(h_t.par_chunks_mut(h)))
                .with_min_len((PARALLEL_FROM / h).max(1))
                .for_each(|((g, cp), (c, hh))| lstm_cell(g, cp, c, hh));
            if k > 0 && !dropped.is_empty() {
                tape.x[k].extend_from_slice(&dropped);
            }
        }
        let top = &tape.hs[nl - 1][t * bh..][..bh];
        let query: &[f32] = match &w_in {
            Some(w) => {
                let q = &mut tape.queries[t * bh..][..bh];
                w.matmul((top, &[]), b, None, q, false);
                q
            }
            None => top,
        };
        let a_t = &mut tape.weights[t * b * s_len..][..b * s_len];
        let ctx_t = &mut tape.contexts[t * bh..][..bh];
        attend(&tape.memory, &tape.valid, n, query, a_t, ctx_t);
        let v_t = &mut tape.vectors[t * bh..][..bh];
        w_out.matmul((ctx_t, top), b, None, v_t, false);
        tanh_in_place(v_t);
        let out_t = &mut tape.out[t * bh..][..bh];
        out_t.copy_from_slice(v_t);
        if let Some(m) = dropout.as_deref_mut().and_then(|d| d.mask(bh)) {
            multiply(out_t, &m);
            out_mask.extend_from_slice(&m);
        }
    }
    for (k, m) in layer_masks.into_iter().enumerate() {
        if !m.is_empty() {
            tape.in_mask[k] = Some(m);
        }
    }
    if !out_mask.is_empty() {
        tape.out_mask = Some(out_mask);
    }
    tape
}

/// One step's attention for every row: weights `a (B, S)` of `query (B, H)` over the
/// memory (padding exactly 0) and the contexts `(B, H)`.
fn attend(memory: &[f32], valid: &[bool], n: Sizes, query: &[f32], a: &mut [f32], ctx: &mut [f32]) {
    let (s_len, h) = (n.source, n.hidden);
    type Row<'a> = (usize, ((&'a [f32], &'a mut [f32]), &'a mut [f32]));
    let row = |(r, ((q, a), c)): Row| {
        let mem = &memory[r * s_len * h..][..s_len * h];
        let ok = &valid[r * s_len..][..s_len];
        let mut max = f32::NEG_INFINITY;
        for ((w, m), &real) in a.iter_mut().zip(mem.chunks_exact(h)).zip(ok) {
            *w = if real {
                m.iter().zip(q).map(|(x, y)| x * y).sum()
            } else {
                f32::NEG_INFINITY
            };
            max = max.max(*w);
        }
        c.fill(0.0);
        if max == f32::NEG_INFINITY {
            a.fill(0.0);
            return;
        }
        let sum = exp_in_place(a, max);
        for (w, (m, &real)) in a.iter_mut().zip(mem.chunks_exact(h).zip(ok)) {
            *w = if real { *w / sum } else { 0.0 };
            c.iter_mut().zip(m).for_each(|(c, x)| *c += *w * x);
        }
    };
    let rows = query
        .par_chunks(h)
        .zip(a.par_chunks_mut(s_len))
        .zip(ctx.par_chunks_mut(h))
        .enumerate();
    rows.with_min_len((PARALLEL_FROM / (s_len * h).max(1)).max(1))
        .for_each(row);
}
