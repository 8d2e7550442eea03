//! Decoding, independent of any model: search talks to a `Scorer` only, so the same beam
//! search serves a trained network, an ensemble, or a hand-written scorer in tests.

pub mod beam;
pub mod device_rank;
#[cfg(feature = "cuda")]
mod device_rank_cuda;
pub mod ensemble;
pub mod rank;

use crate::error::Result;
use rank::{step_ranked_on_host, Ranking};

/// What search needs from a model: a start state per source, next-token log-probabilities
/// for a batch of rows, and row selection as beams are reordered.
pub trait Scorer {
    /// Everything the scorer carries between steps, one row per open hypothesis.
    type State;

    /// Start state for `sources` (row i is source i).
    fn start(&self, sources: &[&[u32]]) -> Result<Self::State>;

    /// Log-probabilities of the next token for each row, given each row's previous token
    /// (`prev.len()` rows), written to `out` as a row-major `(rows, vocab_size)` vector (its
    /// old contents are overwritten; search passes the same vector every step, so its memory
    /// is reused); returns the new state.
    fn step(&self, state: &Self::State, prev: &[u32], out: &mut Vec<f32>) -> Result<Self::State>;

    /// One step ranked: the new state and, per row, its best `ranking.widths[r]` extensions
    /// as (`ranking.bases[r]` + log-probability, token), best first, ties to the lower token
    /// id, NaN and `ranking.banned` skipped. By default `step`, then `rank::rank_rows` on
    /// the host over `scratch`; a scorer whose rows live on a GPU ranks them there, so only
    /// the candidates are copied back.
    fn step_top_k(
        &self,
        state: &Self::State,
        prev: &[u32],
        ranking: &Ranking,
        scratch: &mut Vec<f32>,
    ) -> Result<(Self::State, Candidates)> {
        step_ranked_on_host(self, state, prev, ranking, scratch)
    }

    /// A state whose row i is row `rows[i]` of `state`.
    fn reorder(&self, state: &Self::State, rows: &[usize]) -> Result<Self::State>;

    fn vocab_size(&self) -> usize;

    /// After a step: for each row, the source token index it attended to most when it
    /// scored this step's tokens (models with attention; None for others). Search keeps
    /// them as each hypothesis's alignment.
    fn peaks(&self, _state: &Self::State) -> Option<Vec<u32>> {
        None
    }
}

/// Per open row, its best extensions as (score, token), best first.
pub type Candidates = Vec<Vec<(f32, u32)>>;

/// One finished translation candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Output ids, EOS excluded.
    pub tokens: Vec<u32>,
    /// Summed log-probability (EOS included when it was emitted).
    pub log_prob: f32,
    /// The ranking score: `log_prob` divided by the length penalty.
    pub score: f32,
    /// For each of `tokens`, the source token index attended to most (empty when the
    /// scorer has no attention).
    pub alignment: Vec<u32>,
}

/// In-place log-softmax of each `vocab`-long row of `logits` (rows in parallel).
pub fn log_softmax_rows(logits: &mut [f32], vocab: usize) {
    use rayon::prelude::*;
    logits.par_chunks_mut(vocab).for_each(|row| {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum = crate::kernels::vexp::sum_exp(row, max);
        let log_z = max + sum.ln();
        for x in row.iter_mut() {
            *x -= log_z;
        }
    });
}
