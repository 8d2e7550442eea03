//! Luong attention for CPU search steps (`decode_step`), in plain Rust over the encoder's top
//! outputs copied out once per batch of sentences. Rows (hypotheses) point at their sentence's
//! memory instead of carrying a copy, so reordering beams moves one index per row.

use std::sync::Arc;

use candle_core::DType;
use rayon::prelude::*;

use super::attention::Memory;
use crate::error::Result;
use crate::kernels::vexp::{exp_in_place, tanh_in_place};

/// The encoder's top outputs of a batch of sentences.
#[derive(Debug)]
pub struct StepMemory {
    /// Source positions (padded length).
    pub steps: usize,
    pub hidden: usize,
    /// `(B, S, H)`.
    pub states: Vec<f32>,
    /// `(B, S)`: whether position s of sentence b is a real token (padding comes first).
    pub valid: Vec<bool>,
    /// Whether the encoder read the source backwards (for alignments).
    pub reversed: bool,
}

impl StepMemory {
    pub fn from_memory(memory: &Memory, reversed: bool) -> Result<Self> {
        let (b, s, h) = memory.states.dims3()?;
        let states = memory
            .states
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let valid = match &memory.bias {
            Some(bias) => bias
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|&v| v == 0.0)
                .collect(),
            None => vec![true; b * s],
        };
        Ok(StepMemory {
            steps: s,
            hidden: h,
            states,
            valid,
            reversed,
        })
    }

    /// The index, in the source as given, of the token at memory position `pos` of
    /// sentence `b`.
    pub fn source_index(&self, b: usize, pos: usize) -> u32 {
        let valid = &self.valid[b * self.steps..(b + 1) * self.steps];
        let len = valid.iter().filter(|&&v| v).count();
        let k = pos.saturating_sub(self.steps - len);
        if self.reversed {
            len.saturating_sub(1 + k) as u32
        } else {
            k as u32
        }
    }
}

/// What the attention carries between steps, per row.
#[derive(Debug, Clone)]
pub struct AttentionState {
    pub memory: Arc<StepMemory>,
    /// Row r reads sentence `sentence[r]`'s memory.
    pub sentence: Vec<usize>,
    /// The last attentional vectors `(rows, H)` (zeros before the first step).
    pub feed: Vec<f32>,
    /// Per row, the source token index the last step attended to most.
    pub peak: Vec<u32>,
}

impl AttentionState {
    /// The start: row i is sentence i.
    pub fn start(memory: StepMemory) -> Self {
        let rows = memory.valid.len() / memory.steps.max(1);
        let h = memory.hidden;
        AttentionState {
            memory: Arc::new(memory),
            sentence: (0..rows).collect(),
            feed: vec![0.0; rows * h],
            peak: vec![0; rows],
        }
    }

    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let h = self.memory.hidden;
        let mut feed = Vec::with_capacity(rows.len() * h);
        for &r in rows {
            feed.extend_from_slice(&self.feed[r * h..(r + 1) * h]);
        }
        AttentionState {
            memory: self.memory.clone(),
            sentence: rows.iter().map(|&r| self.sentence[r]).collect(),
            feed,
            peak: rows.iter().map(|&r| self.peak[r]).collect(),
        }
    }
}

/// For each row: the context `(H)` of `query (rows, H)` over its sentence's memory,
/// written into `context`, and the source index of the largest weight.
pub fn contexts(state: &AttentionState, query: &[f32], context: &mut [f32]) -> Vec<u32> {
    let m = &state.memory;
    let (s_len, h) = (m.steps, m.hidden);
    let one_row = |(r, (q, ctx)): (usize, (&[f32], &mut [f32]))| {
        let b = state.sentence[r];
        let states = &m.states[b * s_len * h..(b + 1) * s_len * h];
        let valid = &m.valid[b * s_len..(b + 1) * s_len];
        let mut scores: Vec<f32> = states
            .chunks_exact(h)
            .zip(valid)
            .map(|(hs, &ok)| {
                if ok {
                    hs.iter().zip(q).map(|(a, b)| a * b).sum()
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let (mut best, mut max) = (0, f32::NEG_INFINITY);
        for (j, &v) in scores.iter().enumerate() {
            if v > max {
                (best, max) = (j, v);
            }
        }
        if max == f32::NEG_INFINITY {
            // No real position (an empty source): nothing to attend to.
            ctx.fill(0.0);
            return m.source_index(b, best);
        }
        let sum = exp_in_place(&mut scores, max);
        ctx.fill(0.0);
        for (w, hs) in scores.iter().zip(states.chunks_exact(h)) {
            let w = w / sum;
            if w != 0.0 {
                ctx.iter_mut().zip(hs).for_each(|(c, x)| *c += w * x);
            }
        }
        m.source_index(b, best)
    };
    let rows = query.chunks_exact(h).zip(context.chunks_exact_mut(h));
    if query.len() >= 4096 {
        rows.enumerate()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(one_row)
            .collect()
    } else {
        rows.enumerate().map(one_row).collect()
    }
}

/// `tanh` in place: the attentional vector from `W_c [c | h]`.
pub fn activate(x: &mut [f32]) {
    tanh_in_place(x);
}
