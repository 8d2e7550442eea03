//! Corpus chrF exactly as sacrebleu 2.x computes it by default: character n-grams up to 6,
//! whitespace removed, beta 2, one reference, statistics summed over the corpus.

use std::collections::HashMap;

use super::py_split;

const ORDER: usize = 6;
const BETA: f64 = 2.0;

/// A corpus chrF score.
#[derive(Debug, Clone, PartialEq)]
pub struct Chrf {
    pub score: f64,
    /// Per order n = 1..6: [hypothesis n-grams, reference n-grams, matches].
    pub stats: [[usize; 3]; ORDER],
}

impl Chrf {
    /// sacrebleu's signature for these settings.
    pub const SIGNATURE: &'static str =
        "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0";

    /// Corpus chrF of `hyps` against one reference each (equal counts required).
    pub fn corpus(hyps: &[String], refs: &[String]) -> Chrf {
        assert_eq!(hyps.len(), refs.len(), "one reference per hypothesis");
        let mut stats = [[0usize; 3]; ORDER];
        for (h, r) in hyps.iter().zip(refs) {
            let (h, r) = (squeezed_chars(h), squeezed_chars(r));
            let (h, r) = (char_ngrams(&h), char_ngrams(&r));
            for n in 0..ORDER {
                let mut hyp_count = 0;
                let mut matches = 0;
                for (g, &c) in &h[n] {
                    hyp_count += c;
                    matches += c.min(*r[n].get(g).unwrap_or(&0));
                }
                stats[n][0] += hyp_count;
                stats[n][1] += r[n].values().sum::<usize>();
                stats[n][2] += matches;
            }
        }
        Chrf {
            score: f_score(&stats),
            stats,
        }
    }

    /// sacrebleu's format, e.g. `chrF2 = 55.02`.
    pub fn format(&self) -> String {
        format!("chrF2 = {:.2}", self.score)
    }
}

/// The characters of `line` with all whitespace removed.
fn squeezed_chars(line: &str) -> Vec<char> {
    py_split(line).concat().chars().collect()
}

/// Counts of the character n-grams (n = 1..6) of `chars`.
fn char_ngrams(chars: &[char]) -> Vec<HashMap<&[char], usize>> {
    (1..=ORDER)
        .map(|n| {
            let mut m = HashMap::new();
            if chars.len() >= n {
                for w in chars.windows(n) {
                    *m.entry(w).or_insert(0) += 1;
                }
            }
            m
        })
        .collect()
}

/// sacrebleu's `CHRF._compute_f_score` without eps smoothing (effective-order averaging).
fn f_score(stats: &[[usize; 3]; ORDER]) -> f64 {
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut effective) = (0f64, 0f64, 0usize);
    for &[n_hyp, n_ref, n_match] in stats {
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += n_match as f64 / n_hyp as f64;
            avg_rec += n_match as f64 / n_ref as f64;
            effective += 1;
        }
    }
    if effective == 0 {
        return 0.0;
    }
    avg_prec /= effective as f64;
    avg_rec /= effective as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
}
