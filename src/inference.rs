//! Using a trained model: translating text with beam search, and teacher-forced perplexity.

use candle_core::Device;

use crate::checkpoint::Loaded;
use crate::config::SearchConfig;
use crate::data::batch::{token_batches, Batch, Example};
use crate::error::Result;
use crate::model::scorer::ModelScorer;
use crate::model::Seq2Seq;
use crate::search::beam::beam_search;
use crate::tokenizer::SubwordTokenizer;

/// A model with its tokenizers and search settings.
pub struct Translator {
    pub model: Seq2Seq,
    pub src_tok: SubwordTokenizer,
    pub tgt_tok: SubwordTokenizer,
    pub search: SearchConfig,
}

impl Translator {
    pub fn new(loaded: Loaded, search: SearchConfig) -> Result<Self> {
        search.validate()?;
        Ok(Translator {
            model: loaded.model.detached(),
            src_tok: loaded.src_tok,
            tgt_tok: loaded.tgt_tok,
            search,
        })
    }

    /// Translates every line, in input order. Sentences of similar length are decoded
    /// together, `search.batch_size` at a time; a blank line translates to a blank line.
    pub fn translate(&self, lines: &[String]) -> Result<Vec<String>> {
        let ids: Vec<Vec<u32>> = lines
            .iter()
            .map(|l| self.src_tok.encode(l.trim()))
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..lines.len()).filter(|&i| !ids[i].is_empty()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![String::new(); lines.len()];
        let scorer = ModelScorer { model: &self.model };
        for chunk in order.chunks(self.search.batch_size) {
            let sources: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let results = beam_search(
                &scorer,
                &sources,
                &self.search,
                self.model.cfg.bos_id,
                self.model.cfg.eos_id,
            )?;
            for (&i, hyps) in chunk.iter().zip(results) {
                if let Some(best) = hyps.first() {
                    out[i] = self.tgt_tok.decode(&best.tokens)?;
                }
            }
        }
        Ok(out)
    }
}

/// Summed target negative log-likelihood and token count of `examples` under teacher
/// forcing (EOS counted, padding not).
pub fn teacher_forced_nll(
    model: &Seq2Seq,
    examples: &[Example],
    batch_tokens: usize,
    device: &Device,
) -> Result<(f64, usize)> {
    let model = model.detached();
    let (mut nll, mut tokens) = (0f64, 0usize);
    for idx in token_batches(examples, batch_tokens, None) {
        let refs: Vec<&Example> = idx.iter().map(|&i| &examples[i]).collect();
        let batch = Batch::new(&refs, &model.cfg, device)?;
        let (sum, n) = model.forward_teacher(&batch)?;
        nll += sum.to_scalar::<f32>()? as f64;
        tokens += n;
    }
    Ok((nll, tokens))
}
