//! One decoder step for search on the CPU, in plain Rust over weights laid out once per
//! model: each LSTM layer's `[W_ih W_hh]` side by side with its summed biases, so a step is
//! one `rowdot` product per layer plus the output layer, with no tensor bookkeeping.

use candle_core::{DType, Device, Tensor};

use rayon::prelude::*;

use super::attention::Memory;
use super::decode_attention::{activate, contexts, AttentionState, StepMemory};
use super::lstm::cell::lstm_cell;
use super::lstm::LstmState;
use super::Seq2Seq;
use crate::error::{Error, Result};
use crate::kernels::{matmul_wt, PackedWt};

/// Rows from which a product uses the packed panels rather than `rowdot`.
const PACKED_FROM_ROWS: usize = 6;

/// `x . wᵀ + bias` for any number of rows: `w (n, k)` row-major for a few rows (beam search
/// of one sentence) and packed into panels for many (batches).
struct StepMatrix {
    w: Vec<f32>,
    packed: PackedWt,
    n: usize,
    bias: Vec<f32>,
}

impl StepMatrix {
    fn new(w: Vec<f32>, n: usize, bias: Vec<f32>) -> Self {
        let packed = PackedWt::new(&w, n, w.len() / n.max(1));
        StepMatrix { w, packed, n, bias }
    }

    /// `out (rows, n) = x (rows, k) . wᵀ + bias`, the rows of `x` given in two blocks side
    /// by side, `[x.0 | x.1]`.
    fn apply(&self, x: (&[f32], &[f32]), rows: usize, out: &mut [f32]) {
        if rows >= PACKED_FROM_ROWS {
            self.packed.matmul(x, rows, Some(&self.bias), out, false);
        } else {
            // A few rows: joining the blocks costs little.
            let ka = x.0.len().checked_div(rows).unwrap_or(0);
            let kb = x.1.len().checked_div(rows).unwrap_or(0);
            let mut joined = Vec::with_capacity(x.0.len() + x.1.len());
            for r in 0..rows {
                joined.extend_from_slice(&x.0[r * ka..(r + 1) * ka]);
                joined.extend_from_slice(&x.1[r * kb..(r + 1) * kb]);
            }
            matmul_wt(&joined, rows, &self.w, self.n, Some(&self.bias), out, false);
        }
    }
}

/// The decoder of a model, laid out for single steps (about twice the size of the decoder's
/// weights again in memory: row-major and packed).
pub struct DecodeWeights {
    hidden: usize,
    vocab: usize,
    emb: usize,
    /// `(V, E)` target embeddings.
    tgt_emb: Vec<f32>,
    /// Per decoder layer: `w (4H, I + H)` = `[W_ih W_hh]`, `bias (4H)` = `b_ih + b_hh`.
    layers: Vec<StepMatrix>,
    /// `(V, H)` and `(V)`.
    proj: StepMatrix,
    /// Luong attention's `W_a (H, H)` (general only) and `W_c (H, 2H)`, zero biases.
    attention: Option<(Option<StepMatrix>, StepMatrix)>,
    reverse_source: bool,
}

/// The decoder state of `rows` hypotheses: `h` and `c` are `(layers, rows, H)`.
#[derive(Debug, Clone)]
pub struct StepState {
    pub rows: usize,
    pub hidden: usize,
    pub h: Vec<f32>,
    pub c: Vec<f32>,
    /// The attention's memory and last attentional vectors, for a model with attention.
    pub attention: Option<AttentionState>,
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl DecodeWeights {
    /// The layout of `model`'s decoder, or None when the model is not on the CPU (other
    /// devices keep using tensor ops).
    pub fn new(model: &Seq2Seq) -> Result<Option<Self>> {
        if !matches!(model.device(), Device::Cpu) {
            return Ok(None);
        }
        let h = model.cfg.hidden;
        let mut layers = Vec::new();
        for l in &model.decoder.layers {
            let (w_ih, w_hh) = (flat(&l.weight_ih)?, flat(&l.weight_hh)?);
            let input = w_ih.len() / (4 * h);
            let mut w = Vec::with_capacity(4 * h * (input + h));
            for g in 0..4 * h {
                w.extend_from_slice(&w_ih[g * input..(g + 1) * input]);
                w.extend_from_slice(&w_hh[g * h..(g + 1) * h]);
            }
            let bias = flat(&l.bias_ih)?
                .iter()
                .zip(flat(&l.bias_hh)?)
                .map(|(a, b)| a + b)
                .collect();
            layers.push(StepMatrix::new(w, 4 * h, bias));
        }
        let no_bias = || vec![0f32; h];
        let attention = match model.attention() {
            Some(a) => Some((
                match &a.w_in {
                    Some(w) => Some(StepMatrix::new(flat(w)?, h, no_bias())),
                    None => None,
                },
                StepMatrix::new(flat(&a.w_out)?, h, no_bias()),
            )),
            None => None,
        };
        Ok(Some(DecodeWeights {
            attention,
            reverse_source: model.cfg.reverse_source,
            hidden: h,
            vocab: model.cfg.tgt_vocab,
            emb: model.cfg.emb,
            tgt_emb: flat(&model.tgt_emb)?,
            layers,
            proj: StepMatrix::new(
                flat(&model.proj_w)?,
                model.cfg.tgt_vocab,
                flat(&model.proj_b)?,
            ),
        }))
    }

    /// The encoder's final state (and, for a model with attention, its memory) as a step
    /// state.
    pub fn state_from(&self, s: &LstmState, memory: Option<&Memory>) -> Result<StepState> {
        let rows = s.h.first().map_or(Ok(0), |t| t.dim(0))?;
        let cat = |ts: &[candle_core::Tensor]| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(ts.len() * rows * self.hidden);
            for t in ts {
                out.extend(flat(t)?);
            }
            Ok(out)
        };
        Ok(StepState {
            rows,
            hidden: self.hidden,
            h: cat(&s.h)?,
            c: cat(&s.c)?,
            attention: match (&self.attention, memory) {
                (Some(_), Some(m)) => Some(AttentionState::start(StepMemory::from_memory(
                    m,
                    self.reverse_source,
                )?)),
                (None, _) => None,
                (Some(_), None) => {
                    return Err(Error::Config(
                        "a model with attention needs the encoder's memory to decode".into(),
                    ))
                }
            },
        })
    }

    /// The new state, and in `logits` (resized, old contents overwritten) the logits
    /// `(rows, V)` of the next token after `prev` (one id per row, each below V).
    pub fn step(
        &self,
        state: &StepState,
        prev: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<StepState> {
        let (rows, h) = (state.rows, self.hidden);
        if prev.len() != rows {
            return Err(Error::Config(format!(
                "decoder step: {} previous tokens for {rows} rows",
                prev.len()
            )));
        }
        if let Some(&id) = prev.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(Error::Config(format!(
                "decoder step: token id {id} is outside the target vocabulary of {}",
                self.vocab
            )));
        }
        let mut next = StepState {
            rows,
            hidden: h,
            h: vec![0.0; state.h.len()],
            c: vec![0.0; state.c.len()],
            attention: None,
        };
        // Layer 0 reads the embeddings of `prev`, joined by the last attentional vectors
        // under input feeding.
        let feed = state.attention.as_ref().map(|a| &a.feed[..]);
        let width = self.emb + feed.map_or(0, |_| h);
        let mut embedded: Vec<f32> = Vec::with_capacity(rows * width);
        for (r, &id) in prev.iter().enumerate() {
            let id = id as usize;
            embedded.extend_from_slice(&self.tgt_emb[id * self.emb..(id + 1) * self.emb]);
            if let Some(f) = feed {
                embedded.extend_from_slice(&f[r * h..(r + 1) * h]);
            }
        }
        let mut gates = vec![0f32; rows * 4 * h];
        let size = rows * h;
        for (l, layer) in self.layers.iter().enumerate() {
            let at = l * size;
            let (h0, c0) = (&state.h[at..at + size], &state.c[at..at + size]);
            // Layer input: the embeddings of `prev`, then the layer below's new h.
            let (below, here) = next.h.split_at_mut(at);
            let input = if l == 0 {
                &embedded[..]
            } else {
                &below[at - size..]
            };
            layer.apply((input, h0), rows, &mut gates);
            let (h1, c1) = (&mut here[..size], &mut next.c[at..at + size]);
            if size >= 4096 {
                gates
                    .par_chunks_mut(4 * h)
                    .zip(c0.par_chunks(h))
                    .zip(c1.par_chunks_mut(h).zip(h1.par_chunks_mut(h)))
                    .with_min_len(8)
                    .for_each(|((g, c0), (c1, h1))| lstm_cell(g, c0, c1, h1));
            } else {
                gates
                    .chunks_mut(4 * h)
                    .zip(c0.chunks(h))
                    .zip(c1.chunks_mut(h).zip(h1.chunks_mut(h)))
                    .for_each(|((g, c0), (c1, h1))| lstm_cell(g, c0, c1, h1));
            }
        }
        let top = &next.h[(self.layers.len() - 1) * size..];
        let attended = match (&self.attention, &state.attention) {
            (Some((w_in, w_out)), Some(att)) => {
                let query = match w_in {
                    Some(w) => {
                        let mut q = vec![0f32; size];
                        w.apply((top, &[]), rows, &mut q);
                        q
                    }
                    None => top.to_vec(),
                };
                let mut context = vec![0f32; size];
                let peak = contexts(att, &query, &mut context);
                let mut vector = vec![0f32; size];
                w_out.apply((&context, top), rows, &mut vector);
                activate(&mut vector);
                Some(AttentionState {
                    memory: att.memory.clone(),
                    sentence: att.sentence.clone(),
                    feed: vector,
                    peak,
                })
            }
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "decoder step: the state and the weights disagree about attention".into(),
                ))
            }
        };
        let out = attended.as_ref().map_or(top, |a| &a.feed[..]);
        // Every entry is written: only growth needs initialising.
        logits.resize(rows * self.vocab, 0.0);
        self.proj.apply((out, &[]), rows, logits);
        next.attention = attended;
        Ok(next)
    }
}

impl StepState {
    /// A state whose row i is row `rows[i]` of this one.
    pub fn select_rows(&self, rows: &[usize]) -> StepState {
        let (h, layers) = (self.hidden, self.h.len() / (self.rows * self.hidden).max(1));
        let pick = |src: &[f32]| {
            let mut out = Vec::with_capacity(layers * rows.len() * h);
            for l in 0..layers {
                for &r in rows {
                    let at = (l * self.rows + r) * h;
                    out.extend_from_slice(&src[at..at + h]);
                }
            }
            out
        };
        StepState {
            rows: rows.len(),
            hidden: h,
            h: pick(&self.h),
            c: pick(&self.c),
            attention: self.attention.as_ref().map(|a| a.select_rows(rows)),
        }
    }
}
