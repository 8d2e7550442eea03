//! Scores: corpus BLEU and chrF equal to sacrebleu 2.6's defaults, and perplexity.

pub mod bleu;
pub mod chrf;

pub use bleu::{tokenize_13a, Bleu};
pub use chrf::Chrf;

/// Python's `str.isspace` (Unicode White_Space plus the ASCII separators \x1c-\x1f), so
/// splitting and stripping match sacrebleu's `str.split()` / `str.rstrip()` exactly.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()`.
pub(crate) fn py_split(s: &str) -> Vec<&str> {
    s.split(py_space).filter(|w| !w.is_empty()).collect()
}

/// Python's `str.rstrip()`.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_space)
}

/// exp(summed negative log-likelihood / tokens).
pub fn perplexity(nll_sum: f64, tokens: usize) -> f64 {
    if tokens == 0 {
        f64::NAN
    } else {
        (nll_sum / tokens as f64).exp()
    }
}
