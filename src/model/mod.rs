//! The Sutskever et al. (2014) encoder-decoder: embeddings -> N-layer LSTM over the
//! (reversed) source; its final (h, c) of layer k starts decoder layer k; N-layer LSTM over
//! the shifted target; a linear projection to the target vocabulary.

pub mod attention;
pub mod attention_train;
pub mod decode_attention;
pub mod decode_step;
pub mod dropout;
pub mod lstm;
pub mod params;
pub mod precision;
pub mod train_step;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::data::batch::{Batch, StepMask};
use crate::error::{Error, Result};
use crate::loss::output_layer::output_loss;
use crate::loss::{masked_nll, smoothed_nll_sums};
use attention::{first_feed, AttentionLayer, Memory};
use dropout::Dropout;
use lstm::{LstmLayer, LstmPath, LstmState, StackedLstm};
use precision::Precision;

/// The whole network. Weights are shared `Tensor`s: when they come from training `Var`s,
/// optimizer updates are seen here without rebuilding.
#[derive(Debug, Clone)]
pub struct Seq2Seq {
    pub cfg: ModelConfig,
    src_emb: Tensor,
    tgt_emb: Tensor,
    encoder: StackedLstm,
    decoder: StackedLstm,
    proj_w: Tensor,
    proj_b: Tensor,
    /// Luong attention with input feeding (`cfg.attention`), or None.
    attention: Option<AttentionLayer>,
    path: LstmPath,
    /// The products' precision on the tensor path (f32 unless training asks otherwise).
    precision: Precision,
}

impl Seq2Seq {
    /// Builds the model from named tensors (see `params::param_shapes`), converted to f32.
    pub fn from_tensors(cfg: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        cfg.validate()?;
        params::check(cfg, tensors).map_err(Error::Config)?;
        let get = |name: String| -> Result<Tensor> {
            let t = &tensors[&name];
            Ok(if t.dtype() == DType::F32 {
                t.clone()
            } else {
                t.to_dtype(DType::F32)?
            })
        };
        let stack = |side: &str| -> Result<StackedLstm> {
            let layers = (0..cfg.layers)
                .map(|k| {
                    Ok(LstmLayer {
                        weight_ih: get(format!("{side}.weight_ih_l{k}"))?,
                        weight_hh: get(format!("{side}.weight_hh_l{k}"))?,
                        bias_ih: get(format!("{side}.bias_ih_l{k}"))?,
                        bias_hh: get(format!("{side}.bias_hh_l{k}"))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(StackedLstm { layers })
        };
        let src_emb = get("src_emb.weight".into())?;
        let path = LstmPath::for_device(src_emb.device());
        let attention = if cfg.attention.is_on() {
            Some(AttentionLayer {
                kind: cfg.attention,
                w_in: match cfg.attention {
                    crate::config::Attention::General => Some(get(params::ATTN_IN.into())?),
                    _ => None,
                },
                w_out: get(params::ATTN_OUT.into())?,
            })
        } else {
            None
        };
        Ok(Seq2Seq {
            cfg: cfg.clone(),
            src_emb,
            tgt_emb: get("tgt_emb.weight".into())?,
            encoder: stack("encoder")?,
            decoder: stack("decoder")?,
            proj_w: get("proj.weight".into())?,
            proj_b: get("proj.bias".into())?,
            attention,
            path,
            precision: Precision::F32,
        })
    }

    /// Chooses the LSTM implementation (tests compare the two).
    pub fn with_path(mut self, path: LstmPath) -> Self {
        self.path = path;
        self
    }

    /// Computes the tensor path's products at `precision` (see `Precision`).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    pub fn device(&self) -> &Device {
        self.src_emb.device()
    }

    /// The same weights cut from any autograd graph, for inference while training.
    pub fn detached(&self) -> Self {
        let d = |t: &Tensor| t.detach();
        let stack = |s: &StackedLstm| StackedLstm {
            layers: s
                .layers
                .iter()
                .map(|l| LstmLayer {
                    weight_ih: d(&l.weight_ih),
                    weight_hh: d(&l.weight_hh),
                    bias_ih: d(&l.bias_ih),
                    bias_hh: d(&l.bias_hh),
                })
                .collect(),
        };
        Seq2Seq {
            cfg: self.cfg.clone(),
            src_emb: d(&self.src_emb),
            tgt_emb: d(&self.tgt_emb),
            encoder: stack(&self.encoder),
            decoder: stack(&self.decoder),
            proj_w: d(&self.proj_w),
            proj_b: d(&self.proj_b),
            attention: self.attention.as_ref().map(|a| a.detached()),
            path: self.path,
            precision: self.precision,
        }
    }

    /// Every named tensor, as it would be saved.
    pub fn named_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        out.insert("src_emb.weight".into(), self.src_emb.clone());
        out.insert("tgt_emb.weight".into(), self.tgt_emb.clone());
        for (side, s) in [("encoder", &self.encoder), ("decoder", &self.decoder)] {
            for (k, l) in s.layers.iter().enumerate() {
                out.insert(format!("{side}.weight_ih_l{k}"), l.weight_ih.clone());
                out.insert(format!("{side}.weight_hh_l{k}"), l.weight_hh.clone());
                out.insert(format!("{side}.bias_ih_l{k}"), l.bias_ih.clone());
                out.insert(format!("{side}.bias_hh_l{k}"), l.bias_hh.clone());
            }
        }
        out.insert("proj.weight".into(), self.proj_w.clone());
        out.insert("proj.bias".into(), self.proj_b.clone());
        if let Some(a) = &self.attention {
            if let Some(w) = &a.w_in {
                out.insert(params::ATTN_IN.into(), w.clone());
            }
            out.insert(params::ATTN_OUT.into(), a.w_out.clone());
        }
        out
    }

    /// The attention layer, when the model has one.
    pub fn attention(&self) -> Option<&AttentionLayer> {
        self.attention.as_ref()
    }

    /// `ids (T, B)` u32 -> `(T, B, E)`.
    fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (t, b) = ids.dims2()?;
        let e = table.dim(1)?;
        Ok(table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((t, b, e))?)
    }

    /// Encodes `src (S, B)` (already in reading order, padding first; see `Batch`) and
    /// returns every encoder layer's final `(h, c)`, each `(B, H)`.
    pub fn encode(&self, src: &Tensor, mask: Option<&StepMask>) -> Result<LstmState> {
        Ok(self.encode_with(src, mask, None)?.1)
    }

    /// As `encode`, with the encoder's top-layer outputs as attention's memory.
    pub fn encode_memory(
        &self,
        src: &Tensor,
        mask: Option<&StepMask>,
    ) -> Result<(LstmState, Memory)> {
        let (top, last) = self.encode_with(src, mask, None)?;
        Ok((last, Memory::new(&top, mask)?))
    }

    /// The encoder's top outputs `(S, B, H)` and every layer's final state.
    fn encode_with(
        &self,
        src: &Tensor,
        mask: Option<&StepMask>,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<(Tensor, LstmState)> {
        let (_, b) = src.dims2()?;
        let mut x = Self::embed(&self.src_emb, src)?;
        if let Some(d) = dropout.as_deref_mut() {
            x = d.apply(&x)?;
        }
        let zero = LstmState::zeros(self.cfg.layers, b, self.cfg.hidden, self.device())?;
        self.encoder
            .forward(&x, &zero, mask, self.path, self.precision, dropout)
    }

    /// One attention decoder step for rows in search (tensor path): `prev (R)` u32 ids, the
    /// state, the last attentional vector `feed (R, H)` -> (the new attentional vector
    /// `(R, H)`, the attention weights `(R, S)`, the new state).
    pub fn attend_step(
        &self,
        prev: &Tensor,
        state: &LstmState,
        feed: &Tensor,
        memory: &Memory,
    ) -> Result<(Tensor, Tensor, LstmState)> {
        let att = self
            .attention
            .as_ref()
            .ok_or_else(|| Error::Config("attend_step on a model without attention".into()))?;
        let y = self.tgt_emb.index_select(prev, 0)?;
        let x = Tensor::cat(&[&y, feed], 1)?.unsqueeze(0)?;
        let (top, next) = self.run_decoder(&x, state, None)?;
        let (vector, weights) = att.attend(&top.squeeze(0)?, memory)?;
        Ok((vector, weights, next))
    }

    /// Runs the decoder over `tgt_in (T, B)` from `state`: top-layer outputs `(T, B, H)` and
    /// the state after the last step.
    pub fn decode(&self, tgt_in: &Tensor, state: &LstmState) -> Result<(Tensor, LstmState)> {
        let y = Self::embed(&self.tgt_emb, tgt_in)?;
        self.run_decoder(&y, state, None)
    }

    /// The decoder stack over `x (T, B, I)` from `state`, on the model's path and precision
    /// (no mask: target rows are padded at the end, after everything that is read).
    fn run_decoder(
        &self,
        x: &Tensor,
        state: &LstmState,
        dropout: Option<&mut Dropout>,
    ) -> Result<(Tensor, LstmState)> {
        self.decoder
            .forward(x, state, None, self.path, self.precision, dropout)
    }

    /// Decoder outputs `(N, H)` -> logits `(N, V)`.
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self
            .precision
            .product_wt(hidden, &self.proj_w)?
            .broadcast_add(&self.proj_b)?)
    }

    /// Logits `(T * B, V)` of every target position under teacher forcing.
    fn teacher_logits(&self, batch: &Batch) -> Result<Tensor> {
        self.project(&self.teacher_top(batch, None)?)
    }

    /// The decoder's top outputs `(T * B, H)` at every target position under teacher
    /// forcing. With `dropout`: on both embeddings, between LSTM layers, and on these outputs.
    fn teacher_top(&self, batch: &Batch, mut dropout: Option<&mut Dropout>) -> Result<Tensor> {
        let (memory, state) =
            self.encode_with(&batch.src, batch.src_mask.as_ref(), dropout.as_deref_mut())?;
        let mut y = Self::embed(&self.tgt_emb, &batch.tgt_in)?;
        if let Some(d) = dropout.as_deref_mut() {
            y = d.apply(&y)?;
        }
        if let Some(att) = &self.attention {
            let memory = Memory::new(&memory, batch.src_mask.as_ref())?;
            return self.teacher_attention(att, &y, state, &memory, dropout);
        }
        let (mut top, _) = self.run_decoder(&y, &state, dropout.as_deref_mut())?;
        if let Some(d) = dropout {
            top = d.apply(&top)?;
        }
        let (t, b, h) = top.dims3()?;
        Ok(top.reshape((t * b, h))?)
    }

    /// The attention decoder under teacher forcing, one step at a time (input feeding makes
    /// step t's input depend on step t-1's output): `y (T, B, E)` embedded targets ->
    /// attentional vectors `(T * B, H)`, dropped out when training (the dropped vector is
    /// what the next step reads, as in OpenNMT).
    fn teacher_attention(
        &self,
        att: &AttentionLayer,
        y: &Tensor,
        mut state: LstmState,
        memory: &Memory,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (t_len, b, _) = y.dims3()?;
        let mut feed = first_feed(b, self.cfg.hidden, y)?;
        let mut outs = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let x = Tensor::cat(&[&y.get(t)?, &feed], 1)?.unsqueeze(0)?;
            let (top, next) = self.run_decoder(&x, &state, dropout.as_deref_mut())?;
            let (vector, _) = att.attend(&top.squeeze(0)?, memory)?;
            feed = match dropout.as_deref_mut() {
                Some(d) => d.apply(&vector)?,
                None => vector,
            };
            outs.push(feed.clone());
            state = next;
        }
        Ok(Tensor::stack(&outs, 0)?.reshape((t_len * b, self.cfg.hidden))?)
    }

    /// Forced decoding: each sentence's summed target negative log-likelihood, `(B)`.
    pub fn sentence_nll(&self, batch: &Batch) -> Result<Tensor> {
        let logits = self.teacher_logits(batch)?;
        let (t, b) = batch.tgt_out.dims2()?;
        let nll = masked_nll(
            &logits,
            &batch.tgt_out.flatten_all()?,
            &batch.tgt_mask.flatten_all()?,
        )?;
        Ok(nll.reshape((t, b))?.sum(0)?)
    }

    /// Teacher forcing: the summed negative log-likelihood of the batch's target tokens
    /// (a scalar tensor; padding excluded) and the number of tokens it covers.
    pub fn forward_teacher(&self, batch: &Batch) -> Result<(Tensor, usize)> {
        let (_, nll) = self.graph_loss(&self.teacher_top(batch, None)?, batch, 0.0)?;
        Ok((nll, batch.tgt_tokens))
    }

    /// (Smoothed loss sum, NLL sum) of decoder outputs `top (T * B, H)` as Candle ops:
    /// projection, then cross-entropy (every device; the reference for `loss::output_layer`).
    fn graph_loss(&self, top: &Tensor, batch: &Batch, smoothing: f64) -> Result<(Tensor, Tensor)> {
        smoothed_nll_sums(
            &self.project(top)?,
            &batch.tgt_out.flatten_all()?,
            &batch.tgt_mask.flatten_all()?,
            smoothing,
        )
    }

    /// A training forward pass: (loss to minimise, plain NLL), both summed over the batch's
    /// target tokens. The loss is label-smoothed by `smoothing`; `dropout` as in training.
    pub fn forward_train(
        &self,
        batch: &Batch,
        dropout: Option<&mut Dropout>,
        smoothing: f64,
    ) -> Result<(Tensor, Tensor)> {
        let top = self.teacher_top(batch, dropout)?;
        if self.device().is_cpu() {
            // Gradients worked out with the loss: the (N, V) logits never enter the graph.
            return output_loss(
                &top,
                &self.proj_w,
                &self.proj_b,
                batch.tgt_out.flatten_all()?.to_vec1::<u32>()?,
                batch.tgt_mask.flatten_all()?.to_vec1::<f32>()?,
                smoothing,
            );
        }
        self.graph_loss(&top, batch, smoothing)
    }
}
