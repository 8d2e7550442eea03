//! Property tests (proptest): batching covers every pair exactly once per epoch in an order
//! fixed by the seed, padding never counts in the loss, and beam search ranks its n-best,
//! equals greedy at beam 1 and never panics for any beam, n-best or length flags.

mod common;

use std::collections::HashMap;

use candle_core::Device;
use proptest::prelude::*;

use nmt::config::{LengthPenalty, SearchConfig};
use nmt::data::batch::{token_batches, Batch, Example};
use nmt::model::{params, Seq2Seq};
use nmt::rng::Rng;
use nmt::search::beam::beam_search;
use nmt::search::{log_softmax_rows, Scorer};

const BOS: u32 = 1;
const EOS: u32 = 2;

/// Pairs of 1..12 source and 1..12 target ids in 4..30.
fn examples() -> impl Strategy<Value = Vec<Example>> {
    let ids = |n| proptest::collection::vec(4u32..30, 1..n);
    proptest::collection::vec((ids(12), ids(12)), 1..60).prop_map(|v| {
        v.into_iter()
            .map(|(src, tgt)| Example { src, tgt })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn each_pair_once_per_epoch_in_a_seeded_order(
        ex in examples(),
        batch_tokens in 26usize..400,
        seed in any::<u64>(),
    ) {
        let batches = token_batches(&ex, batch_tokens, Some(&mut Rng::new(seed)));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..ex.len()).collect::<Vec<_>>());
        for b in &batches {
            prop_assert!(!b.is_empty());
            let s = b.iter().map(|&i| ex[i].src.len()).max().unwrap();
            let t = b.iter().map(|&i| ex[i].tgt.len() + 1).max().unwrap();
            // Within the budget, except a lone pair that is larger by itself.
            prop_assert!(b.len() == 1 || b.len() * (s + t) <= batch_tokens);
        }
        let again = token_batches(&ex, batch_tokens, Some(&mut Rng::new(seed)));
        prop_assert_eq!(&batches, &again);
    }
}

/// A small seeded model on the CPU.
fn model(vocab: usize) -> Seq2Seq {
    let cfg = common::small_cfg(2, vocab, 8, 12);
    let init: HashMap<_, _> = params::init_uniform(&cfg, 7, &Device::Cpu).unwrap();
    Seq2Seq::from_tensors(&cfg, &init).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Each sentence's loss is the same alone as beside longer, padded neighbours.
    #[test]
    fn padding_never_counts_in_the_loss(ex in examples()) {
        let m = model(30);
        let all: Vec<&Example> = ex.iter().take(8).collect();
        let together = Batch::new(&all, &m.cfg, &Device::Cpu).unwrap();
        let nll = m.sentence_nll(&together).unwrap().to_vec1::<f32>().unwrap();
        let tokens: usize = all.iter().map(|e| e.tgt.len() + 1).sum();
        prop_assert_eq!(together.tgt_tokens, tokens);
        for (e, &joint) in all.iter().zip(&nll) {
            let alone = Batch::new(&[*e], &m.cfg, &Device::Cpu).unwrap();
            let single = m.sentence_nll(&alone).unwrap().to_vec1::<f32>().unwrap()[0];
            prop_assert!((joint - single).abs() <= 1e-4 * single.abs().max(1.0), "{} vs {}", joint, single);
        }
    }
}

/// Log-probabilities from a hash of the source and the history (as in tests/beam_search.rs).
struct HashScorer {
    vocab: usize,
}

impl HashScorer {
    fn log_probs(&self, src: &[u32], hist: &[u32]) -> Vec<f32> {
        let mut h: u64 = 1469598103934665603;
        for &x in src.iter().chain([99u32].iter()).chain(hist) {
            h = (h ^ x as u64).wrapping_mul(1099511628211);
        }
        let mut row: Vec<f32> = (0..self.vocab)
            .map(|v| {
                let z = (h ^ (v as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15))
                    .wrapping_mul(0xBF58476D1CE4E5B9);
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0
            })
            .collect();
        row[0] = -30.0;
        row[1] = -30.0;
        log_softmax_rows(&mut row, self.vocab);
        row
    }
}

impl Scorer for HashScorer {
    type State = Vec<(Vec<u32>, Vec<u32>)>;
    fn start(&self, sources: &[&[u32]]) -> nmt::Result<Self::State> {
        Ok(sources.iter().map(|s| (s.to_vec(), vec![])).collect())
    }
    fn step(
        &self,
        state: &Self::State,
        prev: &[u32],
        out: &mut Vec<f32>,
    ) -> nmt::Result<Self::State> {
        out.clear();
        let mut next = Vec::new();
        for ((src, hist), &p) in state.iter().zip(prev) {
            let mut hist = hist.clone();
            if p != BOS || !hist.is_empty() {
                hist.push(p);
            }
            out.extend(self.log_probs(src, &hist));
            next.push((src.clone(), hist));
        }
        Ok(next)
    }
    fn reorder(&self, state: &Self::State, rows: &[usize]) -> nmt::Result<Self::State> {
        Ok(rows.iter().map(|&r| state[r].clone()).collect())
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
}

fn search_config() -> impl Strategy<Value = SearchConfig> {
    (
        1usize..8,
        1usize..8,
        0.1f32..4.0,
        0usize..6,
        prop_oneof![
            Just(LengthPenalty::None),
            Just(LengthPenalty::Average),
            Just(LengthPenalty::Gnmt)
        ],
        0.0f32..2.0,
    )
        .prop_map(
            |(beam, n_best, ratio, min_len, penalty, alpha)| SearchConfig {
                beam,
                n_best: n_best.min(beam),
                max_len_ratio: ratio,
                min_len,
                length_penalty: penalty,
                length_alpha: alpha,
                ..SearchConfig::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any flags: every sentence gets 1..=n-best answers, best first, each within the length
    /// limit and not ending before the minimum length unless the limit forced it.
    #[test]
    fn search_answers_every_sentence_ranked(
        cfg in search_config(),
        sources in proptest::collection::vec(proptest::collection::vec(3u32..12, 1..6), 1..6),
    ) {
        let s = HashScorer { vocab: 12 };
        let refs: Vec<&[u32]> = sources.iter().map(Vec::as_slice).collect();
        let out = beam_search(&s, &refs, &cfg, BOS, EOS).unwrap();
        prop_assert_eq!(out.len(), sources.len());
        for (hyps, src) in out.iter().zip(&sources) {
            prop_assert!(!hyps.is_empty() && hyps.len() <= cfg.n_best);
            for w in hyps.windows(2) {
                prop_assert!(w[0].score >= w[1].score);
            }
            for h in hyps {
                prop_assert!(h.tokens.len() <= cfg.max_output_len(src.len()));
                prop_assert!(!h.tokens.contains(&EOS));
            }
        }
    }

    /// Beam 1 is greedy: the most likely next token (lowest id on ties) until EOS or the
    /// length limit.
    #[test]
    fn beam_one_is_greedy(src in proptest::collection::vec(3u32..12, 1..8), ratio in 0.5f32..3.0) {
        let s = HashScorer { vocab: 12 };
        let cfg = SearchConfig { beam: 1, n_best: 1, max_len_ratio: ratio, ..SearchConfig::default() };
        let max_len = cfg.max_output_len(src.len());
        let mut hist = Vec::new();
        for len in 1.. {
            let row = s.log_probs(&src, &hist);
            let v = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
            if v == EOS {
                break;
            }
            hist.push(v);
            if len >= max_len {
                break;
            }
        }
        let got = beam_search(&s, &[&src], &cfg, BOS, EOS).unwrap();
        prop_assert_eq!(&got[0][0].tokens, &hist);
    }
}
