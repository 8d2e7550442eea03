//! Using trained models: translating text with beam search (one model or an ensemble),
//! forced decoding scores, and teacher-forced perplexity.

pub mod scorer;

use candle_core::Device;

use self::scorer::ModelScorer;
use crate::checkpoint::Loaded;
use crate::config::SearchConfig;
use crate::data::batch::{token_batches, Batch, Example};
use crate::error::{Error, Result};
use crate::model::decode_step::DecodeWeights;
use crate::model::Seq2Seq;
use crate::search::beam::beam_search;
use crate::search::ensemble::Ensemble;
use crate::tokenizer::SubwordTokenizer;

/// One model of a translator, with its name (the folder it came from) for messages.
pub struct Member {
    pub name: String,
    pub model: Seq2Seq,
    pub src_tok: SubwordTokenizer,
    /// The decoder laid out for CPU search steps, built once per model.
    fast: Option<DecodeWeights>,
    /// Whether `src_tok` differs from the first member's (then sources are re-tokenized);
    /// decided once here, since comparing tokenizers serialises them.
    own_source_tokens: bool,
}

/// One candidate translation of a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub text: String,
    /// The ranking score (log-probability over the length penalty).
    pub score: f32,
    /// Summed log-probability of the output tokens (EOS included).
    pub log_prob: f32,
    /// Output subwords (EOS excluded).
    pub tokens: usize,
    /// Hard alignment, one `(source subword, target subword)` index pair per output subword
    /// (0-based; the source position each attended to most). Empty without attention.
    pub alignment: Vec<(u32, u32)>,
}

/// Models (one, or an ensemble sharing one target vocabulary) with the target tokenizer and
/// search settings.
pub struct Translator {
    members: Vec<Member>,
    pub tgt_tok: SubwordTokenizer,
    pub search: SearchConfig,
}

impl Translator {
    /// `models`: (name, loaded model) pairs; with several, their log-probabilities are
    /// averaged at every step. Their target tokenizers must be identical.
    pub fn new(models: Vec<(String, Loaded)>, search: SearchConfig) -> Result<Self> {
        search.validate()?;
        let mut members = Vec::new();
        let mut tgt_tok: Option<SubwordTokenizer> = None;
        for (name, loaded) in models {
            match &tgt_tok {
                None => tgt_tok = Some(loaded.tgt_tok),
                Some(first) if !first.same_as(&loaded.tgt_tok) => {
                    return Err(Error::Config(format!(
                        "{name} has a different target vocabulary (tgt_tokenizer.json) from {}: models in an ensemble must share one target vocabulary",
                        members.first().map_or("", |m: &Member| m.name.as_str())
                    )));
                }
                Some(_) => {}
            }
            let own_source_tokens = members
                .first()
                .is_some_and(|first: &Member| !first.src_tok.same_as(&loaded.src_tok));
            let model = loaded.model.detached();
            members.push(Member {
                name,
                fast: DecodeWeights::new(&model)?,
                model,
                src_tok: loaded.src_tok,
                own_source_tokens,
            });
        }
        let tgt_tok = tgt_tok.ok_or_else(|| Error::Config("give at least one --model".into()))?;
        Ok(Translator {
            members,
            tgt_tok,
            search,
        })
    }

    /// The first (or only) model.
    pub fn model(&self) -> &Seq2Seq {
        &self.members[0].model
    }

    /// The first member with attention (whose alignments search reports), if any.
    pub fn attending_model(&self) -> Option<&Seq2Seq> {
        self.members
            .iter()
            .map(|m| &m.model)
            .find(|m| m.attention().is_some())
    }

    /// The source tokenizer of the first model (the one search lengths are measured in).
    pub fn src_tok(&self) -> &SubwordTokenizer {
        &self.members[0].src_tok
    }

    /// The `search.n_best` best translations of every line, in input order. Sentences of
    /// similar length are decoded together, `search.batch_size` at a time; a blank line gets
    /// one empty translation.
    pub fn translate_nbest(&self, lines: &[String]) -> Result<Vec<Vec<Translation>>> {
        let first = &self.members[0];
        let scorers: Vec<ModelScorer> = self
            .members
            .iter()
            .map(|m| ModelScorer {
                model: &m.model,
                fast: m.fast.as_ref(),
                retokenize: m.own_source_tokens.then_some((&first.src_tok, &m.src_tok)),
            })
            .collect();
        let scorer = Ensemble::new(scorers)?;
        let ids: Vec<Vec<u32>> = lines
            .iter()
            .map(|l| first.src_tok.encode(l.trim()))
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..lines.len()).filter(|&i| !ids[i].is_empty()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let empty = Translation {
            text: String::new(),
            score: 0.0,
            log_prob: 0.0,
            tokens: 0,
            alignment: Vec::new(),
        };
        let mut out = vec![vec![empty]; lines.len()];
        let cfg = &first.model.cfg;
        for chunk in order.chunks(self.search.batch_size) {
            let sources: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let results = beam_search(&scorer, &sources, &self.search, cfg.bos_id, cfg.eos_id)?;
            for (&i, hyps) in chunk.iter().zip(results) {
                out[i] = hyps
                    .into_iter()
                    .map(|h| {
                        Ok(Translation {
                            text: self.tgt_tok.decode(&h.tokens)?,
                            score: h.score,
                            log_prob: h.log_prob,
                            tokens: h.tokens.len(),
                            alignment: (0..).zip(&h.alignment).map(|(t, &s)| (s, t)).collect(),
                        })
                    })
                    .collect::<Result<_>>()?;
            }
        }
        Ok(out)
    }

    /// The best translation of every line, in input order.
    pub fn translate(&self, lines: &[String]) -> Result<Vec<String>> {
        Ok(self
            .translate_nbest(lines)?
            .into_iter()
            .map(|mut hyps| hyps.swap_remove(0).text)
            .collect())
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
    let per = sentence_nll(model, examples, batch_tokens, device)?;
    Ok(per
        .iter()
        .zip(examples)
        .fold((0.0, 0), |(nll, n), (&s, e)| (nll + s, n + e.tgt.len() + 1)))
}

/// Forced decoding: each example's summed target negative log-likelihood (EOS included),
/// in input order.
pub fn sentence_nll(
    model: &Seq2Seq,
    examples: &[Example],
    batch_tokens: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let model = model.detached();
    let mut out = vec![0f64; examples.len()];
    for idx in token_batches(examples, batch_tokens, None) {
        let refs: Vec<&Example> = idx.iter().map(|&i| &examples[i]).collect();
        let batch = Batch::new(&refs, &model.cfg, device)?;
        let nll = model.sentence_nll(&batch)?.to_vec1::<f32>()?;
        for (&i, v) in idx.iter().zip(nll) {
            out[i] = v as f64;
        }
    }
    Ok(out)
}
