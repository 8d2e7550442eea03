//! The trained network as a search `Scorer`: the encoder gives the start state, each step
//! runs one decoder step for every open hypothesis at once.

use candle_core::Tensor;

use crate::data::batch::encode_sources;
use crate::error::{Error, Result};
use crate::model::attention::{first_feed, peaks, Memory};
use crate::model::decode_step::{DecodeWeights, StepState};
use crate::model::lstm::LstmState;
use crate::model::Seq2Seq;
use crate::search::rank::{step_ranked_on_host, Ranking};
use crate::search::{device_rank, log_softmax_rows, Candidates, Scorer};
use crate::tokenizer::SubwordTokenizer;

/// Scores with one model (use `Seq2Seq::detached` weights: no autograd graph is built).
pub struct ModelScorer<'a> {
    pub model: &'a Seq2Seq,
    /// The decoder laid out for CPU steps (`DecodeWeights::new`); None: tensor ops.
    pub fast: Option<&'a DecodeWeights>,
    /// For an ensemble member whose source tokenizer differs from the one that made the
    /// search's source ids: (the tokenizer that made them, this model's own). Byte-level BPE
    /// round-trips text exactly, so ids are decoded to text and encoded again.
    pub retokenize: Option<(&'a SubwordTokenizer, &'a SubwordTokenizer)>,
}

impl<'a> ModelScorer<'a> {
    pub fn new(model: &'a Seq2Seq) -> Self {
        ModelScorer {
            model,
            fast: None,
            retokenize: None,
        }
    }
}

impl ModelScorer<'_> {
    /// One decoder step on the tensor paths: the logits `(rows, vocab)`, on the model's
    /// device, and the new state.
    fn tensor_step(&self, state: &DecoderState, prev: &[u32]) -> Result<(Tensor, DecoderState)> {
        match state {
            DecoderState::Tensors(s) => {
                let ids = Tensor::from_slice(prev, (1, prev.len()), self.model.device())?;
                let (top, next) = self.model.decode(&ids, s)?;
                let logits = self.model.project(&top.squeeze(0)?)?;
                Ok((logits, DecoderState::Tensors(next)))
            }
            DecoderState::Attending {
                lstm, feed, memory, ..
            } => {
                let ids = Tensor::from_slice(prev, prev.len(), self.model.device())?;
                let (vector, weights, next) = self.model.attend_step(&ids, lstm, feed, memory)?;
                let logits = self.model.project(&vector)?;
                Ok((
                    logits,
                    DecoderState::Attending {
                        lstm: next,
                        feed: vector,
                        peak: peaks(&weights, memory, self.model.cfg.reverse_source)?,
                        memory: memory.clone(),
                    },
                ))
            }
            DecoderState::Cpu(_) => Err(Error::Config(
                "a CPU decoder state reached a scorer without CPU weights".into(),
            )),
        }
    }
}

/// The decoder state between search steps.
pub enum DecoderState {
    Tensors(LstmState),
    /// The tensor path of a model with attention: the LSTM state, the last attentional
    /// vectors `(R, H)`, each row's memory, and the last step's peaks (see `Scorer::peaks`).
    Attending {
        lstm: LstmState,
        feed: Tensor,
        memory: Memory,
        peak: Vec<u32>,
    },
    Cpu(StepState),
}

impl Scorer for ModelScorer<'_> {
    type State = DecoderState;

    fn start(&self, sources: &[&[u32]]) -> Result<DecoderState> {
        let own: Vec<Vec<u32>>;
        let sources: Vec<&[u32]> = match self.retokenize {
            Some((from, to)) => {
                own = sources
                    .iter()
                    .map(|s| to.encode(&from.decode(s)?))
                    .collect::<Result<_>>()?;
                own.iter().map(|s| s.as_slice()).collect()
            }
            None => sources.to_vec(),
        };
        let (src, mask) = encode_sources(&sources, &self.model.cfg, self.model.device())?;
        if self.model.attention().is_none() {
            let state = self.model.encode(&src, mask.as_ref())?;
            return Ok(match self.fast {
                Some(w) => DecoderState::Cpu(w.state_from(&state, None)?),
                None => DecoderState::Tensors(state),
            });
        }
        let (state, memory) = self.model.encode_memory(&src, mask.as_ref())?;
        Ok(match self.fast {
            Some(w) => DecoderState::Cpu(w.state_from(&state, Some(&memory))?),
            None => DecoderState::Attending {
                feed: first_feed(sources.len(), self.model.cfg.hidden, &memory.states)?,
                lstm: state,
                memory,
                peak: vec![0; sources.len()],
            },
        })
    }

    fn step(&self, state: &DecoderState, prev: &[u32], out: &mut Vec<f32>) -> Result<DecoderState> {
        let next = match (state, self.fast) {
            (DecoderState::Cpu(s), Some(w)) => DecoderState::Cpu(w.step(s, prev, out)?),
            _ => {
                let (logits, next) = self.tensor_step(state, prev)?;
                *out = logits.flatten_all()?.to_vec1::<f32>()?;
                next
            }
        };
        log_softmax_rows(out, self.model.cfg.tgt_vocab);
        Ok(next)
    }

    /// On the tensor paths the rows are ranked where the logits are (on a GPU, one kernel:
    /// only the candidates are copied back); the CPU decoder's rows are ranked on the host.
    fn step_top_k(
        &self,
        state: &DecoderState,
        prev: &[u32],
        ranking: &Ranking,
        scratch: &mut Vec<f32>,
    ) -> Result<(DecoderState, Candidates)> {
        if matches!(state, DecoderState::Cpu(_)) || !device_rank::runs_on(self.model.device()) {
            return step_ranked_on_host(self, state, prev, ranking, scratch);
        }
        let (logits, next) = self.tensor_step(state, prev)?;
        Ok((next, device_rank::rank_logits(&logits, ranking)?))
    }

    fn reorder(&self, state: &DecoderState, rows: &[usize]) -> Result<DecoderState> {
        Ok(match state {
            DecoderState::Cpu(s) => DecoderState::Cpu(s.select_rows(rows)),
            DecoderState::Tensors(s) => {
                let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
                let idx = Tensor::from_vec(idx, rows.len(), self.model.device())?;
                DecoderState::Tensors(s.select_rows(&idx)?)
            }
            DecoderState::Attending {
                lstm,
                feed,
                memory,
                peak,
            } => {
                let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
                let idx = Tensor::from_vec(idx, rows.len(), self.model.device())?;
                DecoderState::Attending {
                    lstm: lstm.select_rows(&idx)?,
                    feed: feed.index_select(&idx, 0)?,
                    memory: memory.select_rows(&idx)?,
                    peak: rows.iter().map(|&r| peak[r]).collect(),
                }
            }
        })
    }

    fn peaks(&self, state: &DecoderState) -> Option<Vec<u32>> {
        match state {
            DecoderState::Attending { peak, .. } => Some(peak.clone()),
            DecoderState::Cpu(s) => s.attention.as_ref().map(|a| a.peak.clone()),
            DecoderState::Tensors(_) => None,
        }
    }

    fn vocab_size(&self) -> usize {
        self.model.cfg.tgt_vocab
    }
}
