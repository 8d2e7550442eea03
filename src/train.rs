//! Training a model from parallel text: tokenizers, batches, teacher-forced updates,
//! validation perplexity each epoch, and a checkpoint after each epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Var};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint;
use crate::config::{ModelConfig, OptimizerKind, TrainConfig};
use crate::data::batch::{token_batches, Batch, Example};
use crate::data::corpus::read_parallel;
use crate::error::{Error, Result};
use crate::inference::teacher_forced_nll;
use crate::metrics::perplexity;
use crate::model::{params, Seq2Seq};
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::tokenizer::SubwordTokenizer;

/// Everything `nmt train` was asked to do.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    pub src_file: PathBuf,
    pub tgt_file: PathBuf,
    pub valid: Option<(PathBuf, PathBuf)>,
    pub out: PathBuf,
    /// Sizes and depth; the vocabulary sizes are filled in from the tokenizers.
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Subword vocabulary size per side when tokenizers are trained here.
    pub vocab_size: usize,
    /// A tokenizer.json used for both sides instead of training tokenizers.
    pub tokenizer: Option<PathBuf>,
    /// Replace a run already in `out`.
    pub overwrite: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: usize,
    pub epochs_done: usize,
    pub train_pairs: usize,
    pub skipped_pairs: usize,
    pub target_tokens: usize,
    pub tokens_per_sec: f64,
    pub last_loss: f64,
    pub valid_ppl: Option<f64>,
    pub skipped_updates: usize,
}

/// The paper's SGD schedule: `lr` for 5 epochs, then halved every half epoch.
/// Adam keeps `lr` constant. `epoch` is fractional (2.5 = halfway through the third).
pub fn learning_rate(cfg: &TrainConfig, epoch: f64) -> f64 {
    match cfg.optimizer {
        OptimizerKind::Adam => cfg.lr,
        OptimizerKind::Sgd if epoch < 5.0 => cfg.lr,
        OptimizerKind::Sgd => cfg.lr * 0.5f64.powi(1 + ((epoch - 5.0) * 2.0).floor() as i32),
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

/// Refuses to replace a run unless asked to.
fn prepare_out_dir(out: &Path, overwrite: bool) -> Result<()> {
    let holds_run =
        out.join(checkpoint::CONFIG_FILE).exists() || out.join(checkpoint::WEIGHTS_FILE).exists();
    if holds_run && !overwrite {
        return Err(Error::Config(format!(
            "{} already holds a trained model; pass --overwrite to replace it, or choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))
}

/// Appends a line to DIR/train.log.
fn log_line(dir: &Path, line: &str) -> Result<()> {
    let path = dir.join("train.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::write(&path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::write(&path, e))
}

/// Trains a model as `spec` says and leaves it in `spec.out`.
pub fn run(spec: &TrainSpec, device: &Device) -> Result<TrainSummary> {
    spec.train.validate()?;
    let (src_lines, tgt_lines) = read_parallel(&spec.src_file, &spec.tgt_file)?;
    let valid_lines = match &spec.valid {
        Some((s, t)) => Some(read_parallel(s, t)?),
        None => None,
    };
    prepare_out_dir(&spec.out, spec.overwrite)?;
    let (src_tok, tgt_tok) = match &spec.tokenizer {
        Some(path) => {
            let tok = SubwordTokenizer::from_file(path)?;
            (tok.clone(), tok)
        }
        None => (
            SubwordTokenizer::train(src_lines.iter(), spec.vocab_size)?,
            SubwordTokenizer::train(tgt_lines.iter(), spec.vocab_size)?,
        ),
    };
    let cfg = ModelConfig {
        src_vocab: src_tok.vocab_size(),
        tgt_vocab: tgt_tok.vocab_size(),
        ..spec.model.clone()
    };
    cfg.validate()?;
    let (examples, skipped_pairs) = encode_pairs(
        &src_lines,
        &tgt_lines,
        &src_tok,
        &tgt_tok,
        spec.train.max_len,
    )?;
    if examples.is_empty() {
        return Err(Error::Corpus(format!(
            "no usable sentence pair in {} / {}: every pair had an empty side or more than {} tokens",
            spec.src_file.display(),
            spec.tgt_file.display(),
            spec.train.max_len
        )));
    }
    let valid = match &valid_lines {
        Some((s, t)) => Some(encode_pairs(s, t, &src_tok, &tgt_tok, usize::MAX)?.0),
        None => None,
    };
    checkpoint::save_tokenizers(&spec.out, &src_tok, &tgt_tok)?;
    let train_json =
        serde_json::to_string_pretty(&spec.train).map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_text_atomic(&spec.out.join("train_config.json"), &(train_json + "\n"))?;

    let init = params::init_uniform(&cfg, spec.train.seed, device)?;
    let mut names: Vec<&String> = init.keys().collect();
    names.sort();
    let mut vars = Vec::new();
    let mut tensors = std::collections::HashMap::new();
    for name in names {
        let var = Var::from_tensor(&init[name])?;
        tensors.insert(name.clone(), var.as_tensor().clone());
        vars.push(var);
    }
    let model = Seq2Seq::from_tensors(&cfg, &tensors)?;
    let mut optimizer = Optimizer::new(spec.train.optimizer, vars, spec.train.clip_norm)?;
    let mut rng = Rng::new(spec.train.seed ^ 0x5EED_DA7A);

    log_line(
        &spec.out,
        &format!(
            "model: {} layers, emb {}, hidden {}, vocab {}/{}, {} parameters; {} training pairs ({} skipped)",
            cfg.layers,
            cfg.emb,
            cfg.hidden,
            cfg.src_vocab,
            cfg.tgt_vocab,
            params::param_count(&cfg),
            examples.len(),
            skipped_pairs
        ),
    )?;
    let mut summary = TrainSummary {
        steps: 0,
        epochs_done: 0,
        train_pairs: examples.len(),
        skipped_pairs,
        target_tokens: 0,
        tokens_per_sec: 0.0,
        last_loss: f64::NAN,
        valid_ppl: None,
        skipped_updates: 0,
    };
    let mut train_secs = 0f64;
    let epochs = if spec.train.epochs == 0 {
        usize::MAX
    } else {
        spec.train.epochs
    };
    'epochs: for epoch in 0..epochs {
        let batches = token_batches(&examples, spec.train.batch_tokens, Some(&mut rng));
        let bar = if spec.progress {
            let bar = ProgressBar::new(batches.len() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}", epoch + 1));
            bar
        } else {
            ProgressBar::hidden()
        };
        let (mut loss_sum, mut loss_tokens) = (0f64, 0usize);
        for (i, idx) in batches.iter().enumerate() {
            let started = Instant::now();
            let refs: Vec<&Example> = idx.iter().map(|&j| &examples[j]).collect();
            let batch = Batch::new(&refs, &cfg, device)?;
            let (nll, n) = model.forward_teacher(&batch)?;
            let loss = (&nll / n as f64)?;
            let grads = loss.backward()?;
            let lr = learning_rate(&spec.train, epoch as f64 + i as f64 / batches.len() as f64);
            let report = optimizer.step(&grads, lr)?;
            let nll = nll.to_scalar::<f32>()? as f64;
            train_secs += started.elapsed().as_secs_f64();
            summary.steps += 1;
            if report.applied {
                loss_sum += nll;
                loss_tokens += n;
            } else {
                summary.skipped_updates += 1;
            }
            summary.target_tokens += n;
            summary.tokens_per_sec = summary.target_tokens as f64 / train_secs.max(1e-9);
            summary.last_loss = nll / n as f64;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.3} lr {:.3e} {:.0} tok/s",
                loss_sum / loss_tokens.max(1) as f64,
                lr,
                summary.tokens_per_sec
            ));
            if spec.train.max_steps > 0 && summary.steps >= spec.train.max_steps {
                bar.finish_and_clear();
                end_epoch(
                    spec,
                    &model,
                    valid.as_deref(),
                    device,
                    epoch,
                    &mut summary,
                    loss_sum,
                    loss_tokens,
                )?;
                break 'epochs;
            }
        }
        bar.finish_and_clear();
        summary.epochs_done = epoch + 1;
        end_epoch(
            spec,
            &model,
            valid.as_deref(),
            device,
            epoch,
            &mut summary,
            loss_sum,
            loss_tokens,
        )?;
    }
    Ok(summary)
}

/// Validation perplexity, a checkpoint and a log line.
#[allow(clippy::too_many_arguments)]
fn end_epoch(
    spec: &TrainSpec,
    model: &Seq2Seq,
    valid: Option<&[Example]>,
    device: &Device,
    epoch: usize,
    summary: &mut TrainSummary,
    loss_sum: f64,
    loss_tokens: usize,
) -> Result<()> {
    if let Some(v) = valid {
        let (nll, n) = teacher_forced_nll(model, v, spec.train.batch_tokens, device)?;
        summary.valid_ppl = Some(perplexity(nll, n));
    }
    checkpoint::save_model(&spec.out, model)?;
    let train_ppl = perplexity(loss_sum, loss_tokens);
    let line = format!(
        "epoch {} step {} train_ppl {:.2}{} tok/s {:.0} skipped_updates {}",
        epoch + 1,
        summary.steps,
        train_ppl,
        summary
            .valid_ppl
            .map(|p| format!(" valid_ppl {p:.2}"))
            .unwrap_or_default(),
        summary.tokens_per_sec,
        summary.skipped_updates
    );
    if spec.progress {
        eprintln!("{line}");
    }
    log_line(&spec.out, &line)
}
