//! A translator measured on a test set: the beam-search translations with their corpus BLEU
//! and chrF (sacrebleu's), the teacher-forced perplexity of the references, and the decoding
//! speed. `nmt eval` and the depth sweep both measure through here.

use std::time::Instant;

use crate::data::batch::encode_pairs;
use crate::error::Result;
use crate::inference::{teacher_forced_nll, Translator};
use crate::metrics::{perplexity, Bleu, Chrf};

/// What `evaluate` measured.
pub struct TestScores {
    /// The best translation of each source line, in order.
    pub hyps: Vec<String>,
    pub bleu: Bleu,
    pub chrf: Chrf,
    /// Teacher-forced perplexity of the references under the first model.
    pub perplexity: f64,
    /// Target tokens (EOS included) the perplexity is over.
    pub perplexity_tokens: usize,
    /// Source sentences and output tokens decoded per second (search only).
    pub sentences_per_sec: f64,
    pub tokens_per_sec: f64,
}

/// Translates `src` with `t` and scores it against `refs` (line-aligned). `batch_tokens`
/// bounds the teacher-forced batches (memory, not the result).
pub fn evaluate(
    t: &Translator,
    src: &[String],
    refs: &[String],
    batch_tokens: usize,
) -> Result<TestScores> {
    let started = Instant::now();
    let best: Vec<_> = t
        .translate_nbest(src)?
        .into_iter()
        .map(|mut h| h.swap_remove(0))
        .collect();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let out_tokens: usize = best.iter().map(|h| h.tokens).sum();
    let hyps: Vec<String> = best.into_iter().map(|h| h.text).collect();
    let (examples, _) = encode_pairs(src, refs, t.src_tok(), &t.tgt_tok, usize::MAX)?;
    let (nll, tokens) = teacher_forced_nll(t.model(), &examples, batch_tokens, t.model().device())?;
    Ok(TestScores {
        bleu: Bleu::corpus(&hyps, refs),
        chrf: Chrf::corpus(&hyps, refs),
        perplexity: perplexity(nll, tokens),
        perplexity_tokens: tokens,
        sentences_per_sec: src.len() as f64 / secs,
        tokens_per_sec: out_tokens as f64 / secs,
        hyps,
    })
}
