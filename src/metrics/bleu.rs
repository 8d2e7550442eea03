//! Corpus BLEU exactly as sacrebleu 2.x computes it by default (13a tokenisation,
//! exponential smoothing, one reference).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use super::{py_rstrip, py_split};

/// sacrebleu's `Tokenizer13a` (mteval-v13a): unescape a few entities, then split
/// punctuation, periods and commas not between digits, and dashes after digits.
pub fn tokenize_13a(line: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"([\{-~\[-` -&\(-\+:-@/])", " $1 "),
            (r"([^0-9])([\.,])", "$1 $2 "),
            (r"([\.,])([^0-9])", " $1 $2"),
            (r"([0-9])(-)", "$1 $2 "),
        ]
        .into_iter()
        .map(|(re, rep)| (Regex::new(re).expect("static regex"), rep))
        .collect()
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in rules {
        line = re.replace_all(&line, *rep).into_owned();
    }
    py_split(&line).join(" ")
}

/// A corpus BLEU score with the statistics sacrebleu prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    pub score: f64,
    pub precisions: [f64; 4],
    pub bp: f64,
    pub sys_len: usize,
    pub ref_len: usize,
    pub correct: [usize; 4],
    pub total: [usize; 4],
}

impl Bleu {
    /// sacrebleu's signature for these settings.
    pub const SIGNATURE: &'static str =
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0";

    /// Corpus BLEU of `hyps` against one reference each (equal counts required).
    pub fn corpus(hyps: &[String], refs: &[String]) -> Bleu {
        assert_eq!(hyps.len(), refs.len(), "one reference per hypothesis");
        let mut correct = [0usize; 4];
        let mut total = [0usize; 4];
        let (mut sys_len, mut ref_len) = (0, 0);
        for (h, r) in hyps.iter().zip(refs) {
            let h = tokenize_13a(py_rstrip(h));
            let r = tokenize_13a(py_rstrip(r));
            let hw: Vec<&str> = h.split(' ').filter(|w| !w.is_empty()).collect();
            let rw: Vec<&str> = r.split(' ').filter(|w| !w.is_empty()).collect();
            sys_len += hw.len();
            ref_len += rw.len();
            for n in 1..=4 {
                let ref_counts = ngram_counts(&rw, n);
                for (g, c) in ngram_counts(&hw, n) {
                    correct[n - 1] += c.min(*ref_counts.get(&g).unwrap_or(&0));
                }
                total[n - 1] += hw.len().saturating_sub(n - 1);
            }
        }
        Self::from_stats(correct, total, sys_len, ref_len)
    }

    /// sacrebleu's `BLEU.compute_bleu` with smooth_method='exp'.
    fn from_stats(correct: [usize; 4], total: [usize; 4], sys_len: usize, ref_len: usize) -> Bleu {
        let bp = if sys_len < ref_len {
            if sys_len > 0 {
                (1.0 - ref_len as f64 / sys_len as f64).exp()
            } else {
                0.0
            }
        } else {
            1.0
        };
        let mut precisions = [0f64; 4];
        let mut out = Bleu {
            score: 0.0,
            precisions,
            bp,
            sys_len,
            ref_len,
            correct,
            total,
        };
        if correct.iter().all(|&c| c == 0) {
            return out;
        }
        let mut smooth = 1.0;
        for n in 0..4 {
            if total[n] == 0 {
                break;
            }
            precisions[n] = if correct[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * total[n] as f64)
            } else {
                100.0 * correct[n] as f64 / total[n] as f64
            };
        }
        let log_sum: f64 = precisions
            .iter()
            .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
            .sum();
        out.precisions = precisions;
        out.score = bp * (log_sum / 4.0).exp();
        out
    }

    /// sacrebleu's one-line format, e.g. `BLEU = 27.32 58.1/33.4/20.6/13.0 (BP = 1.000 ...)`.
    pub fn format(&self) -> String {
        let ratio = if self.ref_len > 0 {
            self.sys_len as f64 / self.ref_len as f64
        } else {
            0.0
        };
        format!(
            "BLEU = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            self.precisions
                .iter()
                .map(|p| format!("{p:.1}"))
                .collect::<Vec<_>>()
                .join("/"),
            self.bp,
            ratio,
            self.sys_len,
            self.ref_len
        )
    }
}

fn ngram_counts<'a>(words: &[&'a str], n: usize) -> HashMap<Vec<&'a str>, usize> {
    let mut m = HashMap::new();
    if words.len() >= n {
        for w in words.windows(n) {
            *m.entry(w.to_vec()).or_insert(0) += 1;
        }
    }
    m
}
