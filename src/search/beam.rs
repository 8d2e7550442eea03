//! Batched beam search with a shrinking beam: a hypothesis that emits EOS moves to its
//! sentence's finished list and the beam narrows by one, so beam 1 is exactly greedy and
//! every sentence ends with up to K finished hypotheses. Open hypotheses of all sentences are
//! flattened into one batch of rows for the scorer; a batch large enough is first split into
//! one share of sentences per thread, each its own batch (`beam_search`).

use super::rank::Ranking;
use super::{Hypothesis, Scorer};
use crate::config::SearchConfig;
use crate::error::{Error, Result};
use std::sync::OnceLock;

struct Open {
    sentence: usize,
    tokens: Vec<u32>,
    log_prob: f32,
    /// One source index per token, when the scorer reports `peaks`.
    alignment: Vec<u32>,
}

/// Translates every source; returns each sentence's `cfg.n_best` best finished hypotheses,
/// best first, and never none: where the scorer gave only NaN, the empty output with score
/// negative infinity.
///
/// A sentence stops when its beam has shrunk to nothing, at its maximum length
/// (`cfg.max_output_len`, where open hypotheses are finished as they are), or as soon as its
/// n-th best finished hypothesis outranks the best score any open one could still reach:
/// log-probabilities only fall and the length penalty's divisor only grows, so an open score
/// `s <= 0` can at most become `s / divisor(max_len)`.
pub fn beam_search<S: Scorer + Sync>(
    scorer: &S,
    sources: &[&[u32]],
    cfg: &SearchConfig,
    bos: u32,
    eos: u32,
) -> Result<Vec<Vec<Hypothesis>>> {
    let threads = rayon::current_num_threads();
    let rows = sources.len() * cfg.beam.max(1);
    if threads < 2 || sources.len() < threads || rows < SPLIT_FROM_ROWS * threads {
        return search_batch(scorer, sources, cfg, bos, eos);
    }
    // Sentences are searched independently of each other, so each thread takes its own
    // share and searches it alone: nothing one core writes is read or written by the other
    // (split by rows or columns inside every kernel, the logits, gates and states passed
    // between the cores at every step). Beam 5 at batch 32 with the host running the two
    // cores on different dies: 234-239 ms a batch against 271-273 as one batch; on one die
    // even (226-236 against 230-235).
    let Some(pools) = one_thread_pools(threads)? else {
        return search_batch(scorer, sources, cfg, bos, eos);
    };
    let per = sources.len().div_ceil(threads);
    // Each share waits on a thread of its own, which blocks until its pool is done (a
    // thread of the current pool would keep polling for work while it waits).
    let shares: Vec<Result<Vec<Vec<Hypothesis>>>> = std::thread::scope(|scope| {
        let waiting: Vec<_> = sources
            .chunks(per)
            .zip(pools)
            .map(|(share, pool)| {
                scope.spawn(move || pool.install(|| search_batch(scorer, share, cfg, bos, eos)))
            })
            .collect();
        waiting
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut all = Vec::with_capacity(sources.len());
    for share in shares {
        all.extend(share?);
    }
    Ok(all)
}

/// Rows (sentences x beam) per thread from which a batch is split between the threads.
/// Fewer rows than that per thread read every weight for too little arithmetic: beam 5 at
/// batch 8 took 62 ms a batch as one and 76-81 split, greedy at batch 8 16 against 32.
const SPLIT_FROM_ROWS: usize = 64;

/// Single-thread pools, one per thread of the pool of the first split search: inside one,
/// every kernel's parallel loop runs on that one thread. None when that pool had fewer
/// threads than the current one (the search then stays one batch).
fn one_thread_pools(n: usize) -> Result<Option<&'static [rayon::ThreadPool]>> {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    if POOLS.get().is_none() {
        let made = (0..n)
            .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("could not start the search threads: {e}")))?;
        // Another search may have made them meanwhile: then theirs stay.
        let _ = POOLS.set(made);
    }
    Ok(POOLS.get().filter(|p| p.len() >= n).map(|p| p.as_slice()))
}

/// `beam_search` over `sources` as one batch of rows.
fn search_batch<S: Scorer>(
    scorer: &S,
    sources: &[&[u32]],
    cfg: &SearchConfig,
    bos: u32,
    eos: u32,
) -> Result<Vec<Vec<Hypothesis>>> {
    let n = sources.len();
    let k = cfg.beam.max(1);
    let n_best = cfg.n_best.clamp(1, k);
    let max_len: Vec<usize> = sources
        .iter()
        .map(|s| cfg.max_output_len(s.len()))
        .collect();
    let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); n];
    if n == 0 {
        return Ok(finished);
    }
    let mut state = scorer.start(sources)?;
    let mut log_probs = Vec::new();
    let mut open: Vec<Open> = (0..n)
        .map(|i| Open {
            sentence: i,
            tokens: Vec::new(),
            log_prob: 0.0,
            alignment: Vec::new(),
        })
        .collect();
    let mut len = 0;
    while !open.is_empty() {
        len += 1;
        // EOS at step `len` would end an output of len - 1 tokens.
        let banned = (len - 1 < cfg.min_len).then_some(eos);
        let prev: Vec<u32> = open
            .iter()
            .map(|h| *h.tokens.last().unwrap_or(&bos))
            .collect();
        // A sentence's width only changes while that sentence is merged below.
        let ranking = Ranking {
            bases: open.iter().map(|h| h.log_prob).collect(),
            widths: open
                .iter()
                .map(|h| k - finished[h.sentence].len())
                .collect(),
            banned,
        };
        let (stepped, tops) = scorer.step_top_k(&state, &prev, &ranking, &mut log_probs)?;
        let peaks = scorer.peaks(&stepped);
        let mut next_open = Vec::new();
        let mut rows = Vec::new();
        let mut start = 0;
        while start < open.len() {
            let s = open[start].sentence;
            let end = start + open[start..].iter().take_while(|h| h.sentence == s).count();
            let width = k - finished[s].len();
            // The best `width` extensions over all of this sentence's rows.
            let mut cands: Vec<(f32, usize, u32)> = (start..end)
                .flat_map(|r| tops[r].iter().map(move |&(sc, v)| (sc, r, v)))
                .collect();
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            cands.truncate(width);
            let mut kept = Vec::new();
            for (sc, r, v) in cands {
                let mut tokens = open[r].tokens.clone();
                let mut alignment = open[r].alignment.clone();
                let mut push = |token: u32| {
                    tokens.push(token);
                    if let Some(p) = &peaks {
                        alignment.push(p[r]);
                    }
                };
                if v == eos || len >= max_len[s] {
                    if v != eos {
                        push(v);
                    }
                    finished[s].push(Hypothesis {
                        tokens,
                        log_prob: sc,
                        score: cfg.normalise(sc, len),
                        alignment,
                    });
                } else {
                    push(v);
                    kept.push((
                        r,
                        Open {
                            sentence: s,
                            tokens,
                            log_prob: sc,
                            alignment,
                        },
                    ));
                }
            }
            finished[s].sort_by(|a, b| b.score.total_cmp(&a.score));
            let nth_done = finished[s]
                .get(n_best - 1)
                .map_or(f32::NEG_INFINITY, |h| h.score);
            let best_open = kept
                .iter()
                .map(|(_, h)| cfg.normalise(h.log_prob, max_len[s]))
                .fold(f32::NEG_INFINITY, f32::max);
            if nth_done < best_open {
                for (r, h) in kept {
                    rows.push(r);
                    next_open.push(h);
                }
            }
            start = end;
        }
        if next_open.is_empty() {
            break;
        }
        state = scorer.reorder(&stepped, &rows)?;
        open = next_open;
    }
    for list in &mut finished {
        if list.is_empty() {
            // Every extension scored NaN (a damaged model): the empty output, ranked last,
            // rather than no answer at all.
            list.push(Hypothesis {
                tokens: Vec::new(),
                log_prob: f32::NEG_INFINITY,
                score: f32::NEG_INFINITY,
                alignment: Vec::new(),
            });
        }
        list.truncate(n_best);
    }
    Ok(finished)
}
