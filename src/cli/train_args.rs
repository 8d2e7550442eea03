//! `nmt train`'s flags (also the keys of a `--config` TOML file), and the corpus flags that
//! train, eval and the depth sweep share.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::config::{Attention, Metric, OptimizerKind, Schedule};
use crate::model::precision::Precision;

/// Where parallel data comes from: explicit files, or a known corpus.
#[derive(Debug, Clone, Args, Serialize)]
pub struct CorpusArgs {
    /// Take train/val/test files from a known corpus (multi30k, europarl) instead of file flags.
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<String>,
    /// Language pair of --corpus, source-target, e.g. de-en.
    #[arg(long, default_value = "de-en")]
    pub pair: String,
}

/// Output of training progress for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// A progress bar and epoch lines on stderr.
    Text,
    /// Every metrics record as one JSON line on stdout (as in DIR/metrics.jsonl).
    Json,
}

/// `nmt train`'s options. Every field but the few marked `skip` may also come from a TOML
/// file (`--config`, keys as the flags with `_` for `-`); flags given on the command line win.
/// The effective options are written to DIR/train_config.toml.
#[derive(Debug, Args, Serialize)]
pub struct TrainArgs {
    /// Read options from this TOML file (`nmt train --print-config` shows them all).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print every option with its default as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// Continue the run in --out from its last checkpoint (its train_config.toml supplies the
    /// options; flags given here still win, e.g. more --epochs).
    #[arg(long, conflicts_with = "overwrite")]
    #[serde(skip)]
    pub resume: bool,
    /// Replace a run already in --out.
    #[arg(long)]
    #[serde(skip)]
    pub overwrite: bool,
    /// Source side of the training corpus (one sentence per line; plain or .gz).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_file: Option<PathBuf>,
    /// Target side, line-aligned with --src-file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgt_file: Option<PathBuf>,
    /// Validation source file (perplexity is reported at each validation).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_src_file: Option<PathBuf>,
    /// Validation target file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_tgt_file: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub corpus: CorpusArgs,
    /// Run folder for the model, tokenizers, checkpoints and logs.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    /// LSTM layers in the encoder and in the decoder (1-8).
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// LSTM cells per layer.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Embedding size.
    #[arg(long, default_value_t = 256)]
    pub emb: usize,
    /// Luong global attention with input feeding: none (the paper's model), dot or general.
    #[arg(long, value_enum, default_value_t = Attention::None)]
    pub attention: Attention,
    /// Subword vocabulary size of each side's BPE tokenizer.
    #[arg(long, default_value_t = 8000)]
    pub vocab_size: usize,
    /// A tokenizer.json (a file, or a Hub repo id org/name[@revision] holding one) to use for
    /// both sides instead of training BPE.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Passes over the training data (0: until --max-steps).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Stop after this many updates (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_steps: usize,
    /// Padded tokens (source + target) per batch.
    #[arg(long, default_value_t = 2560)]
    pub batch_tokens: usize,
    /// Skip pairs with more subword tokens than this on either side.
    #[arg(long, default_value_t = 80)]
    pub max_len: usize,
    /// sgd (the paper's) or adam (moments saved with every checkpoint).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: 0.7 for sgd, 0.002 for adam).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Learning-rate schedule (default: paper for sgd, constant for adam).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Warm-up updates of the inverse-sqrt and linear schedules.
    #[arg(long, default_value_t = 4000)]
    pub warmup_steps: usize,
    /// Plateau schedule: validations without a better perplexity before halving the rate.
    #[arg(long, default_value_t = 1)]
    pub plateau_patience: usize,
    /// Clip the global gradient norm to this.
    #[arg(long, default_value_t = 5.0)]
    pub clip_norm: f64,
    /// Seed for weights, data order and dropout.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Dropout on embeddings, between LSTM layers and on decoder outputs (training only).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Initial forget-gate bias of every LSTM layer (0: the paper's uniform init; 1 helps
    /// deep stacks start learning).
    #[arg(long, default_value_t = 0.0)]
    pub forget_bias: f64,
    /// Label smoothing of the training loss.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Validate every N updates (0: at epoch ends only).
    #[arg(long, default_value_t = 0)]
    pub valid_every: usize,
    /// Also translate the validation set at each validation and report BLEU.
    #[arg(long)]
    pub valid_bleu: bool,
    /// Beam width of validation translations.
    #[arg(long, default_value_t = 1)]
    pub valid_beam: usize,
    /// Save a checkpoint every N updates (0: at epoch ends only).
    #[arg(long, default_value_t = 0)]
    pub save_every: usize,
    /// Step checkpoints kept in DIR/checkpoints (the best one is kept too).
    #[arg(long, default_value_t = 3)]
    pub keep_last: usize,
    /// Stop after this many validations without a better --metric (0: never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Validation metric for the best model and early stopping.
    #[arg(long, value_enum, default_value_t = Metric::Ppl)]
    pub metric: Metric,
    /// Stop after this many updates in a row with a non-finite loss or gradient.
    #[arg(long, default_value_t = 10)]
    pub max_bad_steps: usize,
    /// Write a metrics record every N updates.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda, cuda:N (the N-th GPU) or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Products' precision on CUDA: f32, tf32 (f32 products on tensor cores) or bf16 (input
    /// projections and output layer in bf16, the rest tf32); weights, gradients and the
    /// optimizer stay f32. The CPU path is f32 only.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// No progress bar or epoch lines.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    /// text: progress bar; json: metrics records on stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    #[serde(skip)]
    pub log_format: LogFormat,
}
