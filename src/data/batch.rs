//! Batches of similar-length pairs under a token budget, laid out time-major for the model.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::rng::Rng;
use crate::tokenizer::SubwordTokenizer;

/// One sentence pair as subword ids, without BOS/EOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub src: Vec<u32>,
    pub tgt: Vec<u32>,
}

/// A batch of B pairs, time-major.
///
/// The source is in the encoder's reading order (reversed when the model reverses it) and
/// padded at the *front*, so every row's final encoder state is at the last step; the
/// mask makes padding steps leave the state unchanged.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(S, B)` u32.
    pub src: Tensor,
    /// Real/padding flags of `src`; `None` when no row is padded.
    pub src_mask: Option<StepMask>,
    /// `(T, B)` u32: BOS, y1 .. ym, then padding.
    pub tgt_in: Tensor,
    /// `(T, B)` u32: y1 .. ym, EOS, then padding.
    pub tgt_out: Tensor,
    /// `(T, B)` f32: 1 on real target positions.
    pub tgt_mask: Tensor,
    /// Real target tokens (EOS included).
    pub tgt_tokens: usize,
}

impl Batch {
    pub fn new(examples: &[&Example], cfg: &ModelConfig, device: &Device) -> Result<Batch> {
        let b = examples.len();
        let sources: Vec<&[u32]> = examples.iter().map(|e| e.src.as_slice()).collect();
        let (src, src_mask) = encode_sources(&sources, cfg, device)?;
        let t_len = examples.iter().map(|e| e.tgt.len()).max().unwrap_or(0) + 1;
        let pad = cfg.pad_id;
        let mut tgt_in = vec![pad; t_len * b];
        let mut tgt_out = vec![pad; t_len * b];
        let mut tgt_mask = vec![0f32; t_len * b];
        let mut tgt_tokens = 0;
        for (j, e) in examples.iter().enumerate() {
            tgt_in[j] = cfg.bos_id;
            for (t, &id) in e.tgt.iter().enumerate() {
                tgt_in[(t + 1) * b + j] = id;
                tgt_out[t * b + j] = id;
            }
            tgt_out[e.tgt.len() * b + j] = cfg.eos_id;
            for t in 0..=e.tgt.len() {
                tgt_mask[t * b + j] = 1.0;
            }
            tgt_tokens += e.tgt.len() + 1;
        }
        Ok(Batch {
            src,
            src_mask,
            tgt_in: Tensor::from_vec(tgt_in, (t_len, b), device)?,
            tgt_out: Tensor::from_vec(tgt_out, (t_len, b), device)?,
            tgt_mask: Tensor::from_vec(tgt_mask, (t_len, b), device)?,
            tgt_tokens,
        })
    }
}

/// Sources in reading order, front-padded: `(S, B)` u32 and the step mask (`None` when no
/// row is padded). Shared by training batches and translation.
pub fn encode_sources(
    sources: &[&[u32]],
    cfg: &ModelConfig,
    device: &Device,
) -> Result<(Tensor, Option<StepMask>)> {
    let b = sources.len();
    let s_len = sources.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![cfg.pad_id; s_len * b];
    let mut flags = vec![0f32; s_len * b];
    for (j, s) in sources.iter().enumerate() {
        let start = s_len - s.len();
        for (k, t) in (start..s_len).enumerate() {
            let id = if cfg.reverse_source {
                s[s.len() - 1 - k]
            } else {
                s[k]
            };
            ids[t * b + j] = id;
            flags[t * b + j] = 1.0;
        }
    }
    let padded = flags.contains(&0.0);
    let mask = if padded {
        Some(StepMask::new(flags, s_len, b, device)?)
    } else {
        None
    };
    Ok((Tensor::from_vec(ids, (s_len, b), device)?, mask))
}

/// Groups example indices into batches of similar lengths whose padded size
/// (B x (longest source + longest target + 1)) stays within `batch_tokens`.
/// With an RNG, ties in length are broken randomly and the batch order is shuffled.
pub fn token_batches(
    examples: &[Example],
    batch_tokens: usize,
    rng: Option<&mut Rng>,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = rng;
    if let Some(r) = rng.as_deref_mut() {
        r.shuffle(&mut order);
    }
    order.sort_by_key(|&i| (examples[i].src.len(), examples[i].tgt.len()));
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut max_s, mut max_t) = (0, 0);
    for i in order {
        let (s, t) = (examples[i].src.len(), examples[i].tgt.len() + 1);
        let (ns, nt) = (max_s.max(s), max_t.max(t));
        if !cur.is_empty() && (cur.len() + 1) * (ns + nt) > batch_tokens {
            batches.push(std::mem::take(&mut cur));
            (max_s, max_t) = (s, t);
        } else {
            (max_s, max_t) = (ns, nt);
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    if let Some(r) = rng {
        r.shuffle(&mut batches);
    }
    batches
}

/// Which steps of a batch are real tokens. Padding steps leave the state unchanged, so a
/// sentence's final state is the same alone or beside longer sentences.
#[derive(Debug, Clone)]
pub struct StepMask {
    /// `(T * B)` flags, 1.0 real / 0.0 padding, for the fused op.
    pub flags: Arc<[f32]>,
    /// The same flags as a `(T, B, 1)` tensor for the reference path.
    pub tensor: Tensor,
}

impl StepMask {
    /// `flags` is time-major: `flags[t * batch + b]`.
    pub fn new(flags: Vec<f32>, steps: usize, batch: usize, device: &Device) -> Result<Self> {
        let tensor = Tensor::from_slice(&flags, (steps, batch, 1), device)?;
        Ok(StepMask {
            flags: flags.into(),
            tensor,
        })
    }
}

/// Subword ids of each pair; pairs with an empty side or longer than `max_len` are dropped.
/// Returns the examples and how many pairs were dropped.
pub fn encode_pairs(
    src: &[String],
    tgt: &[String],
    src_tok: &SubwordTokenizer,
    tgt_tok: &SubwordTokenizer,
    max_len: usize,
) -> Result<(Vec<Example>, usize)> {
    let mut out = Vec::with_capacity(src.len());
    let mut dropped = 0;
    for (s, t) in src.iter().zip(tgt) {
        let e = Example {
            src: src_tok.encode(s.trim())?,
            tgt: tgt_tok.encode(t.trim())?,
        };
        if e.src.is_empty() || e.tgt.is_empty() || e.src.len() > max_len || e.tgt.len() > max_len {
            dropped += 1;
        } else {
            out.push(e);
        }
    }
    Ok((out, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: usize, t: usize) -> Example {
        Example {
            src: (10..10 + s as u32).collect(),
            tgt: (20..20 + t as u32).collect(),
        }
    }

    #[test]
    fn source_is_reversed_and_front_padded() {
        let cfg = ModelConfig::default();
        let (ids, mask) = encode_sources(&[&[5, 6, 7], &[8]], &cfg, &Device::Cpu).unwrap();
        // time-major (S=3, B=2): row 0 reads 7 6 5, row 1 reads pad pad 8
        assert_eq!(
            ids.to_vec2::<u32>().unwrap(),
            vec![vec![7, 0], vec![6, 0], vec![5, 8]]
        );
        assert_eq!(&*mask.unwrap().flags, &[1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn teacher_forcing_targets_are_shifted_and_masked() {
        let cfg = ModelConfig::default();
        let a = Example {
            src: vec![9],
            tgt: vec![5, 6],
        };
        let b = Example {
            src: vec![9],
            tgt: vec![7],
        };
        let batch = Batch::new(&[&a, &b], &cfg, &Device::Cpu).unwrap();
        assert_eq!(
            batch.tgt_in.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1], vec![5, 7], vec![6, 0]]
        );
        assert_eq!(
            batch.tgt_out.to_vec2::<u32>().unwrap(),
            vec![vec![5, 7], vec![6, 2], vec![2, 0]]
        );
        assert_eq!(batch.tgt_tokens, 5);
        assert!(batch.src_mask.is_none());
    }

    #[test]
    fn batches_cover_every_example_once_within_budget() {
        let examples: Vec<Example> = (0..200).map(|i| ex(1 + i % 17, 1 + (i * 7) % 13)).collect();
        let mut rng = Rng::new(3);
        let batches = token_batches(&examples, 120, Some(&mut rng));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        for b in &batches {
            let s = b.iter().map(|&i| examples[i].src.len()).max().unwrap();
            let t = b.iter().map(|&i| examples[i].tgt.len() + 1).max().unwrap();
            assert!(b.len() * (s + t) <= 120);
        }
    }
}
