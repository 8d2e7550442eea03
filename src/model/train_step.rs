//! The CPU training step without Candle's autograd. The forward pass runs the same fused ops
//! as `Seq2Seq::forward_train` (`lstm::fused_layer`, `loss::output_layer`) on plain buffers and keeps what
//! their backward passes need; the backward pass walks the fixed encoder-decoder structure in
//! reverse and produces each parameter's gradient once. Candle's backward would add every
//! gradient into a fresh zero tensor and copy the LSTM weight blocks apart (about 18 ms of a
//! 298 ms 4-layer bench step). `forward_train` (Candle ops, every device) stays the
//! reference the tests hold this path to.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::attention_train::pass::AttentionPass;
use super::attention_train::Sizes;
use super::dropout::Dropout;
use super::lstm::fused_layer::{Activations, LstmLayerOp};
use super::lstm::weights::Weights;
use super::lstm::LstmLayer;
use super::Seq2Seq;
use crate::data::batch::Batch;
use crate::error::{Error, Result};
use crate::kernels::scratch;
use crate::loss::output_layer::{OutputLoss, Pass};
use crate::optim::Gradient;
use crate::tensor_data::storage_f32;

/// What one LSTM layer's backward pass needs from the forward pass.
struct LayerTape {
    op: LstmLayerOp,
    /// The input the layer read, `(T, B, I)`, after dropout; empty above the first layer
    /// when there was no dropout (it read the h sequence below: `layer_input`).
    x: Vec<f32>,
    /// `[h0 | c0]`, `(2, B, H)`.
    hc0: Vec<f32>,
    /// Every step's h, then the last c (the op's output).
    out: Vec<f32>,
    act: Activations,
    /// The dropout factors the input was multiplied by.
    in_mask: Option<Vec<f32>>,
}

impl Drop for LayerTape {
    /// The layer's large buffers go back for the next step's forward (`scratch`).
    fn drop(&mut self) {
        for v in [
            std::mem::take(&mut self.out),
            std::mem::take(&mut self.act.gates),
            std::mem::take(&mut self.act.cs),
        ] {
            scratch::give(v);
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
    decoder: Vec<LayerTape>,
    top_mask: Option<Vec<f32>>,
    /// The attention decoder's pass, in place of `decoder` (empty then).
    attention: Option<AttentionPass>,
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
        if let Some(att) = &self.attention {
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
            let pass = AttentionPass::run(self, att, sizes, inputs, &mut dropout)?;
            let out = self.output_pass(batch, &pass.tape.out, smoothing, loss_scale)?;
            return Ok(CpuForward {
                model: self,
                loss: out.loss,
                nll: out.nll,
                src_ids,
                tgt_ids,
                encoder,
                decoder: Vec::new(),
                top_mask: None,
                attention: Some(pass),
                d_top: out.grads.dh,
                d_proj_w: out.grads.dw,
                d_proj_b: out.grads.db,
            });
        }
        let decoder = run_stack(
            &self.decoder.layers,
            y,
            mask,
            (t_len, b, None),
            (&init, true),
            &mut dropout,
        )?;
        let top = decoder
            .last()
            .map_or(&[][..], |tape| &tape.out[..t_len * bh]);
        // A copy only when dropout changes it.
        let top_mask = dropout.and_then(|d| d.mask(top.len()));
        let top: Cow<[f32]> = match &top_mask {
            Some(m) => {
                let mut dropped = top.to_vec();
                multiply(&mut dropped, m);
                Cow::Owned(dropped)
            }
            None => Cow::Borrowed(top),
        };

        let out = self.output_pass(batch, &top, smoothing, loss_scale)?;
        Ok(CpuForward {
            model: self,
            loss: out.loss,
            nll: out.nll,
            src_ids,
            tgt_ids,
            encoder,
            decoder,
            top_mask,
            attention: None,
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
        let d_init = match &self.attention {
            Some(pass) => {
                let (d_init, d_y, d_mem) = pass.backward(m, &d_top, &mut grads)?;
                grads.insert(
                    "tgt_emb.weight".into(),
                    embedding_grad(&m.tgt_emb, &self.tgt_ids, &d_y)?,
                );
                // The encoder's top layer also fed every step's attention.
                d_above = Some(d_mem);
                d_init
            }
            None => self.plain_decoder_backward(d_top, &mut grads)?,
        };
        self.encoder_backward(d_init, d_above, &mut grads)?;
        Ok(grads)
    }

    /// The plain decoder's backward pass from the output layer's gradient; returns the
    /// gradients of its initial states.
    fn plain_decoder_backward(
        &self,
        mut d_hs: Vec<f32>,
        grads: &mut HashMap<String, Gradient>,
    ) -> Result<Vec<Vec<f32>>> {
        let m = self.model;
        if let Some(mask) = &self.top_mask {
            multiply(&mut d_hs, mask);
        }
        let mut d_init = vec![Vec::new(); self.decoder.len()];
        for (k, tape) in self.decoder.iter().enumerate().rev() {
            // The decoder's last c is not used: its gradient is zero.
            d_hs.resize(d_hs.len() + tape.op.batch * tape.op.hidden, 0.0);
            let input = layer_input(&self.decoder, k, &tape.x, tape.op.steps * tape.op.batch);
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
}

impl CpuForward<'_> {
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

/// Embedding rows of `ids`, `(len, E)`, with a dropout mask drawn and applied.
fn embed_dropped(
    table: &Tensor,
    ids: &[u32],
    name: &str,
    dropout: &mut Option<&mut Dropout>,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let (v, e) = table.dims2()?;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= v) {
        return Err(Error::Training(format!(
            "token id {id} is outside {name}'s {v} rows"
        )));
    }
    let mut x = Vec::with_capacity(ids.len() * e);
    {
        let (s, l) = table.storage_and_layout();
        let rows = storage_f32(&s, l, name)?;
        for &id in ids {
            x.extend_from_slice(&rows[id as usize * e..(id as usize + 1) * e]);
        }
    }
    let mask = dropout.as_deref_mut().and_then(|d| d.mask(x.len()));
    if let Some(m) = &mask {
        multiply(&mut x, m);
    }
    Ok((x, mask))
}

/// Runs a stack of layers over `x (T, B, I)` from `init` (each layer's `[h0 | c0]`, and
/// whether the backward pass needs their gradient), with dropout between layers as
/// `StackedLstm::forward` draws it. `shape`: steps, batch and the step mask.
fn run_stack(
    layers: &[LstmLayer],
    mut x: Vec<f32>,
    mut in_mask: Option<Vec<f32>>,
    (steps, batch, mask): (usize, usize, Option<Arc<[f32]>>),
    (init, init_grad): (&[Vec<f32>], bool),
    dropout: &mut Option<&mut Dropout>,
) -> Result<Vec<LayerTape>> {
    let mut tapes: Vec<LayerTape> = Vec::with_capacity(layers.len());
    for (k, layer) in layers.iter().enumerate() {
        if let Some(below) = tapes.last() {
            // Without dropout the layer reads the h sequence below where it lies (a copy
            // by this thread is a pass over it and leaves it in this core's cache).
            let hs = &below.out[..steps * batch * below.op.hidden];
            in_mask = dropout.as_deref_mut().and_then(|d| d.mask(hs.len()));
            x = match &in_mask {
                Some(m) => {
                    let mut dropped = hs.to_vec();
                    multiply(&mut dropped, m);
                    dropped
                }
                None => Vec::new(),
            };
        }
        let mut op = LstmLayerOp::new(steps, batch, layer.hidden(), mask.clone());
        op.initial_state_grad = init_grad;
        let input = layer_input(&tapes, k, &x, steps * batch);
        let (out, act) = with_weights(layer, |w| op.forward(input, w, &init[k]))?;
        tapes.push(LayerTape {
            op,
            x: std::mem::take(&mut x),
            hc0: init[k].clone(),
            out,
            act,
            in_mask: in_mask.take(),
        });
    }
    Ok(tapes)
}

/// What layer `k` of a stack read, given its own copy `x` (`rows` = steps x batch): `x`, or
/// for a layer above the first with no copy (no dropout), the h sequence of the layer below.
fn layer_input<'a>(below: &'a [LayerTape], k: usize, x: &'a [f32], rows: usize) -> &'a [f32] {
    match k.checked_sub(1).map(|j| &below[j]) {
        Some(under) if x.is_empty() => &under.out[..rows * under.op.hidden],
        _ => x,
    }
}

/// One layer's backward pass: its weight gradients go into `grads` under PyTorch's names;
/// returns the gradient of its input (through its dropout mask) and of `[h0 | c0]`.
fn layer_backward(
    tape: &LayerTape,
    input: &[f32],
    d_out: &[f32],
    layer: &LstmLayer,
    side: &str,
    k: usize,
    grads: &mut HashMap<String, Gradient>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let g = with_weights(layer, |w| {
        let op = &tape.op;
        op.backward(input, w, &tape.hc0, &tape.out, &tape.act, d_out)
    })?;
    let d_b = Tensor::from_vec(g.b, layer.bias_ih.shape(), &Device::Cpu)?;
    grads.insert(
        format!("{side}.weight_ih_l{k}"),
        Gradient::dense_like(g.w_ih, &layer.weight_ih)?,
    );
    grads.insert(
        format!("{side}.weight_hh_l{k}"),
        Gradient::dense_like(g.w_hh, &layer.weight_hh)?,
    );
    // b_ih and b_hh enter as their sum: both get the same gradient.
    grads.insert(format!("{side}.bias_hh_l{k}"), Gradient::Dense(d_b.clone()));
    grads.insert(format!("{side}.bias_ih_l{k}"), Gradient::Dense(d_b));
    let mut d_x = g.x;
    if let Some(mask) = &tape.in_mask {
        multiply(&mut d_x, mask);
    }
    Ok((d_x, g.hc0))
}

/// Runs `f` on the layer's parameters as the LSTM op reads them (their storage as it is,
/// and `b_ih + b_hh`).
fn with_weights<R>(layer: &LstmLayer, f: impl FnOnce(&Weights) -> R) -> Result<R> {
    let (s1, l1) = layer.weight_ih.storage_and_layout();
    let (s2, l2) = layer.weight_hh.storage_and_layout();
    let (s3, l3) = layer.bias_ih.storage_and_layout();
    let (s4, l4) = layer.bias_hh.storage_and_layout();
    let b_ih = storage_f32(&s3, l3, "bias_ih")?;
    let b_hh = storage_f32(&s4, l4, "bias_hh")?;
    let b: Vec<f32> = b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect();
    let w = Weights::of_parts(
        storage_f32(&s1, l1, "weight_ih")?,
        storage_f32(&s2, l2, "weight_hh")?,
        b,
    );
    Ok(f(&w))
}

/// The gradient of an embedding table: each position's row of `d (len, E)` added into the
/// row of its token, kept as the rows of the batch's distinct tokens.
fn embedding_grad(table: &Tensor, ids: &[u32], d: &[f32]) -> Result<Gradient> {
    let (v, e) = table.dims2()?;
    let mut slot = vec![u32::MAX; v];
    let (mut distinct, mut rows) = (Vec::new(), Vec::new());
    for (&id, row) in ids.iter().zip(d.chunks_exact(e)) {
        let s = &mut slot[id as usize];
        if *s == u32::MAX {
            *s = distinct.len() as u32;
            distinct.push(id);
            rows.extend_from_slice(row);
        } else {
            add(&mut rows[*s as usize * e..(*s as usize + 1) * e], row);
        }
    }
    Ok(Gradient::Rows {
        ids: distinct,
        rows,
    })
}

fn multiply(x: &mut [f32], by: &[f32]) {
    x.par_chunks_mut(4096)
        .zip(by.par_chunks(4096))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a *= b));
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}
