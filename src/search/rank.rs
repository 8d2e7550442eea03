//! Ranking a step's candidates on the host: each open row's best extensions from its full
//! row of log-probabilities. Scorers that can rank on their own device do it there instead
//! (`Scorer::step_top_k`); this is the reference they are held to.

use rayon::prelude::*;

use super::{Candidates, Scorer};
use crate::error::Result;

/// What one search step asks for each open row: its best `widths[r]` extensions, scored
/// `bases[r] + log p`, never token `banned`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Each row's log-probability so far.
    pub bases: Vec<f32>,
    /// How many extensions each row needs (its sentence's open beam width).
    pub widths: Vec<usize>,
    /// EOS before the minimum length; None after it.
    pub banned: Option<u32>,
}

/// One step of `scorer` ranked on the host: `step` into `scratch`, then `rank_rows` (the
/// default `Scorer::step_top_k`, and the fallback of scorers that override it).
pub fn step_ranked_on_host<S: Scorer + ?Sized>(
    scorer: &S,
    state: &S::State,
    prev: &[u32],
    ranking: &Ranking,
    scratch: &mut Vec<f32>,
) -> Result<(S::State, Candidates)> {
    let next = scorer.step(state, prev, scratch)?;
    Ok((next, rank_rows(scratch, scorer.vocab_size(), ranking)))
}

/// Per row of `log_probs` (row-major `(rows, vocab)`), its best `widths[r]` (score, token),
/// best first, ties to the lower token id, NaN skipped; rows in parallel when there are
/// enough to pay for it.
pub fn rank_rows(log_probs: &[f32], vocab: usize, ranking: &Ranking) -> Candidates {
    let rows = ranking.bases.len();
    let best = |r: usize| {
        let row = &log_probs[r * vocab..(r + 1) * vocab];
        row_top_k(row, ranking.bases[r], ranking.widths[r], ranking.banned)
    };
    if rows >= PARALLEL_FROM_ROWS {
        (0..rows).into_par_iter().map(best).collect()
    } else {
        (0..rows).map(best).collect()
    }
}

/// The best `k` (score, token) of one row, best first; ties go to the lower token id.
/// `banned` (EOS before the minimum length) is skipped.
pub fn row_top_k(row: &[f32], base: f32, k: usize, banned: Option<u32>) -> Vec<(f32, u32)> {
    let mut top: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        // Once the list is full, most chunks hold nothing above its last entry: one
        // (vectorised) maximum rules them out.
        if top.len() == k && base + chunk_max(chunk) <= top[k - 1].0 {
            continue;
        }
        for (j, &lp) in chunk.iter().enumerate() {
            let (s, v) = (base + lp, (c * CHUNK + j) as u32);
            if s.is_nan() || (top.len() == k && s <= top[k - 1].0) || banned == Some(v) {
                continue;
            }
            let at = top.partition_point(|&(x, _)| x >= s);
            top.insert(at, (s, v));
            top.truncate(k);
        }
    }
    top
}

/// Open hypotheses from which rows are ranked in parallel.
const PARALLEL_FROM_ROWS: usize = 8;

/// Entries per chunk of a row in `row_top_k`.
const CHUNK: usize = 64;

/// The largest entry, ignoring NaN (negative infinity when there is none).
fn chunk_max(chunk: &[f32]) -> f32 {
    // Eight lanes compare independently, so the loop compiles to vector maxima.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut eights = chunk.chunks_exact(8);
    for e in &mut eights {
        for (l, &x) in lanes.iter_mut().zip(e) {
            *l = if x > *l { x } else { *l };
        }
    }
    let rest = eights.remainder().iter();
    lanes
        .iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}
