//! Beam search against hand-written scorers whose best translations are known.

use nmt::config::{LengthPenalty, SearchConfig};
use nmt::search::beam::beam_search;
use nmt::search::{log_softmax_rows, Hypothesis, Scorer};
use nmt::Result;
use proptest::prelude::*;

const BOS: u32 = 1;
const EOS: u32 = 2;

/// Log-probabilities that depend on the source and the whole history through a hash, so
/// every prefix has its own distribution. State: each row's (source, history).
struct HashScorer {
    vocab: usize,
    /// Mixed into the hash: scorers with different salts disagree.
    salt: u32,
}

#[derive(Clone)]
struct Row {
    src: Vec<u32>,
    hist: Vec<u32>,
}

impl HashScorer {
    fn new(vocab: usize) -> Self {
        HashScorer { vocab, salt: 0 }
    }

    fn log_probs(&self, src: &[u32], hist: &[u32]) -> Vec<f32> {
        let mut h: u64 = 1469598103934665603;
        for &x in [self.salt, 99]
            .iter()
            .chain(src)
            .chain([99u32].iter())
            .chain(hist)
        {
            h = (h ^ x as u64).wrapping_mul(1099511628211);
        }
        let mut row: Vec<f32> = (0..self.vocab)
            .map(|v| {
                let z = (h ^ (v as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15))
                    .wrapping_mul(0xBF58476D1CE4E5B9);
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0
            })
            .collect();
        row[0] = -30.0; // pad and BOS are never sensible outputs
        row[1] = -30.0;
        log_softmax_rows(&mut row, self.vocab);
        row
    }
}

impl Scorer for HashScorer {
    type State = Vec<Row>;
    fn start(&self, sources: &[&[u32]]) -> Result<Vec<Row>> {
        Ok(sources
            .iter()
            .map(|s| Row {
                src: s.to_vec(),
                hist: vec![],
            })
            .collect())
    }
    fn step(&self, state: &Vec<Row>, prev: &[u32], out: &mut Vec<f32>) -> Result<Vec<Row>> {
        out.clear();
        let mut next = Vec::new();
        for (row, &p) in state.iter().zip(prev) {
            let mut hist = row.hist.clone();
            if p != BOS || !hist.is_empty() {
                hist.push(p);
            }
            out.extend(self.log_probs(&row.src, &hist));
            next.push(Row {
                src: row.src.clone(),
                hist,
            });
        }
        Ok(next)
    }
    fn reorder(&self, state: &Vec<Row>, rows: &[usize]) -> Result<Vec<Row>> {
        Ok(rows.iter().map(|&r| state[r].clone()).collect())
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
}

fn cfg(beam: usize, alpha: f32) -> SearchConfig {
    SearchConfig {
        beam,
        max_len_ratio: 1.5,
        length_alpha: alpha,
        batch_size: 8,
        ..SearchConfig::default()
    }
}

/// Every output up to `max_len` tokens (EOS-terminated, or cut at max_len), scored by `c`.
fn brute_force(s: &HashScorer, src: &[u32], c: &SearchConfig) -> Vec<Hypothesis> {
    let max_len = c.max_output_len(src.len());
    let mut out = Vec::new();
    let mut stack = vec![(Vec::<u32>::new(), 0f32)];
    while let Some((hist, lp)) = stack.pop() {
        let row = s.log_probs(src, &hist);
        for v in 0..s.vocab as u32 {
            let score = lp + row[v as usize];
            let len = hist.len() + 1;
            let norm = c.normalise(score, len);
            if v == EOS && hist.len() < c.min_len {
                continue;
            }
            if v == EOS {
                out.push(Hypothesis {
                    tokens: hist.clone(),
                    log_prob: score,
                    score: norm,
                    alignment: Vec::new(),
                });
            } else if len == max_len {
                let mut t = hist.clone();
                t.push(v);
                out.push(Hypothesis {
                    tokens: t,
                    log_prob: score,
                    score: norm,
                    alignment: Vec::new(),
                });
            } else {
                let mut t = hist.clone();
                t.push(v);
                stack.push((t, score));
            }
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Every length penalty, with and without a minimum length: a beam wide enough to keep every
/// prefix returns exactly the exhaustive n-best list, so the early stop never cut a winner.
#[test]
fn wide_beam_returns_the_exhaustive_n_best() {
    let s = HashScorer::new(5);
    for penalty in [
        LengthPenalty::None,
        LengthPenalty::Average,
        LengthPenalty::Gnmt,
    ] {
        for (alpha, min_len) in [(1.0, 0), (0.6, 0), (1.0, 2)] {
            for src in [vec![7u32, 8], vec![3], vec![4, 4]] {
                let c = SearchConfig {
                    n_best: 6,
                    length_penalty: penalty,
                    min_len,
                    ..cfg(700, alpha)
                };
                let want = brute_force(&s, &src, &c);
                let got = &beam_search(&s, &[&src], &c, BOS, EOS).unwrap()[0];
                assert_eq!(got.len(), 6, "{penalty:?}: n-best list incomplete");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        g.tokens, w.tokens,
                        "{penalty:?} alpha {alpha} min {min_len} src {src:?}"
                    );
                    assert!((g.score - w.score).abs() < 1e-5);
                }
                if min_len > 0 {
                    assert!(got.iter().all(|h| h.tokens.len() >= min_len));
                }
            }
        }
    }
}

#[test]
fn n_best_is_ordered_with_true_scores() {
    let s = HashScorer::new(6);
    let src = vec![5u32, 9, 11];
    let c = SearchConfig {
        n_best: 4,
        ..cfg(4, 1.0)
    };
    let got = beam_search(&s, &[&src], &c, BOS, EOS).unwrap();
    let list = &got[0];
    assert_eq!(list.len(), 4);
    for w in list.windows(2) {
        assert!(w[0].score >= w[1].score, "n-best out of order");
    }
    for h in list {
        // Recompute the log-probability of the hypothesis step by step.
        let mut lp = 0f32;
        let mut hist = vec![];
        for &t in &h.tokens {
            lp += s.log_probs(&src, &hist)[t as usize];
            hist.push(t);
        }
        if h.tokens.len() < cfg(4, 1.0).max_output_len(src.len()) {
            lp += s.log_probs(&src, &hist)[EOS as usize];
        }
        assert!((lp - h.log_prob).abs() < 1e-4, "{lp} vs {}", h.log_prob);
    }
}

#[test]
fn beam_one_is_exactly_greedy() {
    let s = HashScorer::new(7);
    for src in [vec![3u32], vec![4, 5, 6], vec![9, 9, 9, 9]] {
        let c = cfg(1, 1.0);
        let max_len = c.max_output_len(src.len());
        let (mut hist, mut lp) = (vec![], 0f32);
        loop {
            let row = s.log_probs(&src, &hist);
            let (v, p) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &p)| if p > b.1 { (i, p) } else { b },
                );
            lp += p;
            if v as u32 == EOS {
                break;
            }
            hist.push(v as u32);
            if hist.len() == max_len {
                break;
            }
        }
        let got = beam_search(&s, &[&src], &c, BOS, EOS).unwrap();
        assert_eq!(got[0].len(), 1);
        assert_eq!(got[0][0].tokens, hist);
        assert!((got[0][0].log_prob - lp).abs() < 1e-6);
    }
}

/// Greedy takes the likelier first word and is stuck with a bad ending; beam 2 finds the
/// better sentence. Tokens: 3 = "A" (0.6 first), 4 = "B" (0.4 first, then EOS 0.99).
struct Trap;

impl Scorer for Trap {
    type State = Vec<Vec<u32>>;
    fn start(&self, sources: &[&[u32]]) -> Result<Self::State> {
        Ok(vec![vec![]; sources.len()])
    }
    fn step(&self, state: &Self::State, prev: &[u32], out: &mut Vec<f32>) -> Result<Self::State> {
        out.clear();
        let mut next = Vec::new();
        for (h, &p) in state.iter().zip(prev) {
            let mut h = h.clone();
            if p != BOS {
                h.push(p);
            }
            let probs: [f32; 5] = match h.as_slice() {
                [] => [1e-6, 1e-6, 1e-6, 0.6, 0.4],
                [4] => [1e-6, 1e-6, 0.99, 0.005, 0.005],
                _ => [1e-6, 1e-6, 0.3, 0.35, 0.35],
            };
            out.extend(probs.iter().map(|p| p.ln()));
            next.push(h);
        }
        Ok(next)
    }
    fn reorder(&self, state: &Self::State, rows: &[usize]) -> Result<Self::State> {
        Ok(rows.iter().map(|&r| state[r].clone()).collect())
    }
    fn vocab_size(&self) -> usize {
        5
    }
}

#[test]
fn beam_recovers_what_greedy_misses() {
    let src = vec![3u32, 3];
    let greedy = beam_search(&Trap, &[&src], &cfg(1, 0.0), BOS, EOS).unwrap();
    assert_ne!(greedy[0][0].tokens, vec![4]);
    let beam = beam_search(&Trap, &[&src], &cfg(2, 0.0), BOS, EOS).unwrap();
    assert_eq!(beam[0][0].tokens, vec![4]);
    assert!((beam[0][0].log_prob - (0.4f32 * 0.99).ln()).abs() < 1e-5);
}

/// Also when the batch is large enough to be split between threads (every thread then
/// searches its own share): each sentence's result, in the sources' order.
#[test]
fn sentences_decoded_together_match_decoded_alone() {
    let s = HashScorer::new(6);
    let few: Vec<Vec<u32>> = vec![vec![3], vec![4, 5, 6, 7], vec![8, 9], vec![3, 3, 3]];
    // 3 beams x 50 sentences: enough rows to split between 2 threads.
    let many: Vec<Vec<u32>> = (0..50u32)
        .map(|i| (0..1 + i % 4).map(|j| 3 + (i * 7 + j * 3) % 9).collect())
        .collect();
    let c = cfg(3, 1.0);
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for sources in [&few, &many] {
            let refs: Vec<&[u32]> = sources.iter().map(|v| v.as_slice()).collect();
            let together = pool.install(|| beam_search(&s, &refs, &c, BOS, EOS).unwrap());
            assert_eq!(together.len(), sources.len());
            for (i, src) in sources.iter().enumerate() {
                let alone = beam_search(&s, &[src.as_slice()], &c, BOS, EOS).unwrap();
                assert_eq!(alone[0], together[i], "{threads} threads, sentence {i}");
            }
        }
    }
}

/// Two scorers averaged: an ensemble of a scorer with itself is that scorer, and an ensemble of
/// two different ones ranks by the mean of their log-probabilities.
#[test]
fn ensemble_averages_log_probabilities() {
    use nmt::search::ensemble::Ensemble;
    let a = HashScorer::new(6);
    let src = vec![4u32, 5];
    let c = SearchConfig {
        n_best: 3,
        ..cfg(3, 1.0)
    };
    let single = beam_search(&a, &[&src], &c, BOS, EOS).unwrap();
    let twice = Ensemble::new(vec![HashScorer::new(6), HashScorer::new(6)]).unwrap();
    assert_eq!(beam_search(&twice, &[&src], &c, BOS, EOS).unwrap(), single);

    let b = HashScorer { vocab: 6, salt: 1 };
    let mixed = Ensemble::new(vec![HashScorer::new(6), HashScorer { vocab: 6, salt: 1 }]).unwrap();
    let st = mixed.start(&[&src]).unwrap();
    let mut lp = Vec::new();
    mixed.step(&st, &[BOS], &mut lp).unwrap();
    let (own, other) = (a.log_probs(&src, &[]), b.log_probs(&src, &[]));
    assert!(own != other);
    for v in 0..6 {
        assert!((lp[v] - (own[v] + other[v]) / 2.0).abs() < 1e-6);
    }
    assert!(Ensemble::new(vec![HashScorer::new(6), HashScorer::new(7)]).is_err());
}

/// A damaged model: `HashScorer`'s distributions until `nan_from` tokens are out, then NaN
/// for every token.
struct NanScorer {
    inner: HashScorer,
    nan_from: usize,
}

impl Scorer for NanScorer {
    type State = Vec<Row>;
    fn start(&self, sources: &[&[u32]]) -> Result<Vec<Row>> {
        self.inner.start(sources)
    }
    fn step(&self, state: &Vec<Row>, prev: &[u32], out: &mut Vec<f32>) -> Result<Vec<Row>> {
        let next = self.inner.step(state, prev, out)?;
        for (r, row) in next.iter().enumerate() {
            if row.hist.len() >= self.nan_from {
                out[r * self.inner.vocab..(r + 1) * self.inner.vocab].fill(f32::NAN);
            }
        }
        Ok(next)
    }
    fn reorder(&self, state: &Vec<Row>, rows: &[usize]) -> Result<Vec<Row>> {
        self.inner.reorder(state, rows)
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab
    }
}

/// Scores that turn NaN (at once, or after two tokens) leave no hypothesis to finish: every
/// sentence still gets an answer, the empty output ranked last, for every beam and n-best.
#[test]
fn nan_scores_give_an_empty_output_not_a_panic() {
    let sources: Vec<Vec<u32>> = (0..12).map(|i| vec![4 + i % 3, 5, 3 + i]).collect();
    let refs: Vec<&[u32]> = sources.iter().map(Vec::as_slice).collect();
    for nan_from in [0, 2] {
        for (beam, n_best) in [(1, 1), (4, 2), (5, 5)] {
            let s = NanScorer {
                inner: HashScorer::new(9),
                nan_from,
            };
            let c = SearchConfig {
                n_best,
                ..cfg(beam, 1.0)
            };
            let out = beam_search(&s, &refs, &c, BOS, EOS).unwrap();
            assert_eq!(out.len(), sources.len());
            for hyps in out {
                assert!(!hyps.is_empty() && hyps.len() <= n_best);
                let last = hyps.last().unwrap();
                if nan_from == 0 {
                    assert!(last.tokens.is_empty() && last.score == f32::NEG_INFINITY);
                }
                assert!(hyps.iter().all(|h| !h.score.is_nan()));
            }
        }
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
        let s = HashScorer::new(12);
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
        let s = HashScorer::new(12);
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
