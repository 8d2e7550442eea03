//! The CPU training step without Candle's autograd. The forward pass runs the same fused ops
//! as `Seq2Seq::forward_train` (`lstm::fused_layer`, `loss::output_layer`) on plain buffers and keeps what
//! their backward passes need; the backward pass walks the fixed encoder-decoder structure in
//! reverse and produces each parameter's gradient once. Candle's backward would add every
//! gradient into a fresh zero tensor and copy the LSTM weight blocks apart (about 18 ms of a
//! 298 ms 4-layer bench step). `forward_train` (Candle ops, every device) stays the
//! reference the tests hold this path to.

mod embedding;
mod stack;

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;

use self::embedding::{embed_dropped, embedding_grad};
use self::stack::{layer_backward, layer_input, run_stack, LayerTape};
use super::attention_train::pass::AttentionPass;
use super::attention_train::Sizes;
use super::dropout::Dropout;
use super::Seq2Seq;
use crate::data::batch::Batch;
use crate::error::{Error, Result};
use crate::loss::output_layer::{OutputLoss, Pass};
use crate::optim::Gradient;
use crate::tensor_data::storage_f32;

/// The decoder's part of the forward pass, as its backward pass needs it.
enum DecoderTape {
    /// The plain stack, and the dropout factors its top outputs were multiplied by.
    Plain {
        layers: Vec<LayerTape>,
        top_mask: Option<Vec<f32>>,
    },
    /// The attention decoder.
    Attention(Box<AttentionPass>),
}

impl DecoderTape {
    /// What the output layer reads: the top outputs `(T * B, H)` (`n` values), after dropout.
    fn top(&self, n: usize) -> Cow<'_, [f32]> {
        match self {
            DecoderTape::Plain { layers, top_mask } => {
                let top = layers.last().map_or(&[][..], |tape| &tape.out[..n]);
                // A copy only when dropout changes it.
                match top_mask {
                    Some(m) => {
                        let mut dropped = top.to_vec();
                        multiply(&mut dropped, m);
                        Cow::Owned(dropped)
                    }
                    None => Cow::Borrowed(top),
                }
            }
            DecoderTape::Attention(pass) => Cow::Borrowed(&pass.tape.out),
        }
    }
}

/// A training forward pass on the CPU, ready for its backward pass.
pub struct CpuForward<'a> {
    model: &'a Seq2Seq,
    /// The loss to minimise (label-smoothed), summed over the batch's target tokens.
    pub loss: f64,
    /// The plain negative log-likelihood, summed the same way.
    pub nll: f64,
    src_ids: Vec<u32>,
    tgt_ids: Vec<u32>,
    encoder: Vec<LayerTape>,
    decoder: DecoderTape,
    /// The output layer's gradients (h, W, b), already times the loss scale.
    d_top: Vec<f32>,
    d_proj_w: Vec<f32>,
    d_proj_b: Vec<f32>,
}

impl Seq2Seq {
    /// The CPU training forward pass: what `forward_train` computes (same dropout masks from
    /// the same generator), with the gradients to come scaled by `loss_scale` (e.g. one over
    /// the token count). Errors on other devices.
    pub fn forward_cpu(
        &self,
        batch: &Batch,
        mut dropout: Option<&mut Dropout>,
        smoothing: f64,
        loss_scale: f32,
    ) -> Result<CpuForward<'_>> {
        if !self.device().is_cpu() {
            return Err(Error::Training(
                "the CPU training step needs the model on the CPU".into(),
            ));
        }
        let (hidden, layers) = (self.cfg.hidden, self.cfg.layers);
        let src_ids = batch.src.flatten_all()?.to_vec1::<u32>()?;
        let tgt_ids = batch.tgt_in.flatten_all()?.to_vec1::<u32>()?;
        let (s_len, b) = batch.src.dims2()?;
        let t_len = batch.tgt_in.dim(0)?;

        let (x, mask) = embed_dropped(&self.src_emb, &src_ids, "src_emb.weight", &mut dropout)?;
        let zero = vec![vec![0f32; 2 * b * hidden]; layers];
        let src_mask = batch.src_mask.as_ref().map(|m| m.flags.clone());
        let shape = (s_len, b, src_mask);
        // The encoder starts from constant zeros: no gradient for them.
        let zero = (&zero[..], false);
        let encoder = run_stack(&self.encoder.layers, x, mask, shape, zero, &mut dropout)?;
        // Encoder layer k's last h and c start decoder layer k.
        let bh = b * hidden;
        let init: Vec<Vec<f32>> = encoder
            .iter()
            .map(|tape| {
                let mut hc = tape.out[(s_len - 1) * bh..s_len * bh].to_vec();
                hc.extend_from_slice(&tape.out[s_len * bh..]);
                hc
            })
            .collect();
        let (y, mask) = embed_dropped(&self.tgt_emb, &tgt_ids, "tgt_emb.weight", &mut dropout)?;
        let decoder = match &self.attention {
            Some(att) => {
                let memory = encoder
                    .last()
                    .map_or(&[][..], |tape| &tape.out[..s_len * bh]);
                let valid = batch.src_mask.as_ref().map(|m| m.flags.clone());
                let sizes = Sizes {
                    steps: t_len,
                    batch: b,
                    source: s_len,
                    hidden,
                    emb: self.cfg.emb,
                };
                let inputs = (&y[..], mask, &init[..], memory, valid.as_deref());
                DecoderTape::Attention(Box::new(AttentionPass::run(
                    self,
                    att,
                    sizes,
                    inputs,
                    &mut dropout,
                )?))
            }
            None => {
                let shape = (t_len, b, None);
                let layers = run_stack(
                    &self.decoder.layers,
                    y,
                    mask,
                    shape,
                    (&init, true),
                    &mut dropout,
                )?;
                let top_mask = dropout.and_then(|d| d.mask(t_len * bh));
                DecoderTape::Plain { layers, top_mask }
            }
        };
        let out = self.output_pass(batch, &decoder.top(t_len * bh), smoothing, loss_scale)?;
        Ok(CpuForward {
            model: self,
            loss: out.loss,
            nll: out.nll,
            src_ids,
            tgt_ids,
            encoder,
            decoder,
            d_top: out.grads.dh,
            d_proj_w: out.grads.dw,
            d_proj_b: out.grads.db,
        })
    }

    /// The output layer and loss over the decoder's outputs `top (T * B, H)`.
    fn output_pass(
        &self,
        batch: &Batch,
        top: &[f32],
        smoothing: f64,
        loss_scale: f32,
    ) -> Result<Pass> {
        let targets = batch.tgt_out.flatten_all()?.to_vec1::<u32>()?;
        let target_mask = batch.tgt_mask.flatten_all()?.to_vec1::<f32>()?;
        let out = OutputLoss::new(targets, target_mask, smoothing as f32);
        out.check_targets(self.cfg.tgt_vocab)?;
        let (ws, wl) = self.proj_w.storage_and_layout();
        let (bs, bl) = self.proj_b.storage_and_layout();
        Ok(out.pass(
            top,
            storage_f32(&ws, wl, "proj.weight")?,
            storage_f32(&bs, bl, "proj.bias")?,
            loss_scale,
            0.0,
        ))
    }
}

impl CpuForward<'_> {
    /// The backward pass: every parameter's gradient by name (the names of
    /// `Seq2Seq::named_tensors`); the embeddings' as their batch rows only.
    pub fn backward(mut self) -> Result<HashMap<String, Gradient>> {
        let m = self.model;
        let mut grads = HashMap::new();
        let d_top = std::mem::take(&mut self.d_top);
        let d_w = std::mem::take(&mut self.d_proj_w);
        let d_b = std::mem::take(&mut self.d_proj_b);
        grads.insert("proj.weight".into(), Gradient::dense_like(d_w, &m.proj_w)?);
        grads.insert("proj.bias".into(), Gradient::dense_like(d_b, &m.proj_b)?);

        let mut d_above: Option<Vec<f32>> = None;
        let d_init = match &self.decoder {
            DecoderTape::Attention(pass) => {
                let (d_init, d_y, d_mem) = pass.backward(m, &d_top, &mut grads)?;
                grads.insert(
                    "tgt_emb.weight".into(),
                    embedding_grad(&m.tgt_emb, &self.tgt_ids, &d_y)?,
                );
                // The encoder's top layer also fed every step's attention.
                d_above = Some(d_mem);
                d_init
            }
            DecoderTape::Plain { layers, top_mask } => {
                self.plain_decoder_backward(layers, top_mask.as_deref(), d_top, &mut grads)?
            }
        };
        self.encoder_backward(d_init, d_above, &mut grads)?;
        Ok(grads)
    }

    /// The plain decoder's backward pass from the output layer's gradient; returns the
    /// gradients of its initial states.
    fn plain_decoder_backward(
        &self,
        layers: &[LayerTape],
        top_mask: Option<&[f32]>,
        mut d_hs: Vec<f32>,
        grads: &mut HashMap<String, Gradient>,
    ) -> Result<Vec<Vec<f32>>> {
        let m = self.model;
        if let Some(mask) = top_mask {
            multiply(&mut d_hs, mask);
        }
        let mut d_init = vec![Vec::new(); layers.len()];
        for (k, tape) in layers.iter().enumerate().rev() {
            // The decoder's last c is not used: its gradient is zero.
            d_hs.resize(d_hs.len() + tape.op.batch * tape.op.hidden, 0.0);
            let input = layer_input(layers, k, &tape.x, tape.op.steps * tape.op.batch);
            let (d_x, hc0) = layer_backward(
                tape,
                input,
                &d_hs,
                &m.decoder.layers[k],
                "decoder",
                k,
                grads,
            )?;
            d_init[k] = hc0;
            d_hs = d_x;
        }
        grads.insert(
            "tgt_emb.weight".into(),
            embedding_grad(&m.tgt_emb, &self.tgt_ids, &d_hs)?,
        );
        Ok(d_init)
    }

    /// The encoder's backward pass, from the gradients of its final states (and, with
    /// attention, of its top outputs); the source embeddings' gradient.
    fn encoder_backward(
        &self,
        d_init: Vec<Vec<f32>>,
        mut d_above: Option<Vec<f32>>,
        grads: &mut HashMap<String, Gradient>,
    ) -> Result<()> {
        let m = self.model;
        for (k, tape) in self.encoder.iter().enumerate().rev() {
            let (t, bh) = (tape.op.steps, tape.op.batch * tape.op.hidden);
            let mut d_out = d_above.take().unwrap_or_else(|| vec![0f32; t * bh]);
            // The last step's h and the last c started decoder layer k.
            let (dh0, dc0) = d_init[k].split_at(bh);
            add(&mut d_out[(t - 1) * bh..t * bh], dh0);
            d_out.extend_from_slice(dc0);
            let input = layer_input(&self.encoder, k, &tape.x, t * tape.op.batch);
            let (d_x, _) = layer_backward(
                tape,
                input,
                &d_out,
                &m.encoder.layers[k],
                "encoder",
                k,
                grads,
            )?;
            d_above = Some(d_x);
        }
        let d_x = d_above.unwrap_or_default();
        grads.insert(
            "src_emb.weight".into(),
            embedding_grad(&m.src_emb, &self.src_ids, &d_x)?,
        );
        Ok(())
    }
}

/// `x *= by`, elementwise (dropout masks).
fn multiply(x: &mut [f32], by: &[f32]) {
    x.par_chunks_mut(4096)
        .zip(by.par_chunks(4096))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a *= b));
}

/// `x += y`, elementwise.
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}
