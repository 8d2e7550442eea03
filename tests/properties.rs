//! Property tests (proptest) of batching: every pair exactly once per epoch in an order fixed
//! by the seed, and padding never counts in the loss. (Search properties are in
//! tests/beam_search.rs, beside its scorer.)

mod common;

use std::collections::HashMap;

use candle_core::Device;
use proptest::prelude::*;

use nmt::data::batch::{token_batches, Batch, Example};
use nmt::model::{params, Seq2Seq};
use nmt::rng::Rng;

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
