//! The command line (clap derive). `src/bin/nmt.rs` parses it and dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use serde::Serialize;

use crate::config::{LengthPenalty, Metric, OptimizerKind, Schedule};

#[derive(Debug, Parser)]
#[command(
    name = "nmt",
    version = env!("NMT_VERSION_INFO"),
    about = "Train and run stacked-LSTM neural machine translation models (Sutskever et al. 2014).",
    after_help = "Example:\n  nmt train --corpus multi30k --pair de-en --out checkpoints/de-en --epochs 2\n  nmt translate --model checkpoints/de-en \"Ein Hund läuft im Schnee.\"\n  nmt eval --model checkpoints/de-en --corpus multi30k --pair de-en"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train tokenizers and a model from a parallel corpus.
    #[command(
        args_override_self = true,
        after_help = "Examples:\n  nmt train --src-file train.de --tgt-file train.en \\\n            --valid-src-file val.de --valid-tgt-file val.en --out checkpoints/de-en\n  nmt train --config run.toml --epochs 12          # flags override the file\n  nmt train --out checkpoints/de-en --resume       # continue after a kill or Ctrl-C\n  nmt train --print-config > run.toml\n\nWrites DIR/model.safetensors (the best model so far), DIR/config.json, DIR/src_tokenizer.json,\nDIR/tgt_tokenizer.json, DIR/train_config.toml, DIR/metrics.jsonl, DIR/train.log and\nDIR/checkpoints/step-N/ (weights, optimizer state, trainer state). Corpus files may be plain or gzip."
    )]
    Train(TrainArgs),
    /// Translate sentences with a trained model (beam search).
    #[command(
        after_help = "Example:\n  nmt translate --model checkpoints/de-en \"Ein Mann fährt Fahrrad.\"\n  nmt translate --model checkpoints/de-en --input test.de --output test.hyp.en\n\nSentences come from the arguments, else --input, else stdin (one per line);\none translation per line, in input order."
    )]
    Translate(TranslateArgs),
    /// Corpus BLEU and chrF (equal to sacrebleu's) of a model's translations or of given ones.
    #[command(
        after_help = "Examples:\n  nmt eval --model checkpoints/de-en --src-file test.de --ref-file test.en\n  nmt eval --model checkpoints/de-en --corpus multi30k --pair de-en\n  nmt eval --hyp-file test.hyp.en --ref-file test.en --json"
    )]
    Eval(EvalArgs),
    /// Forced decoding: the log-probability and perplexity of given translations.
    #[command(
        after_help = "Example:\n  nmt score --model checkpoints/de-en --src-file test.de --tgt-file test.en\n\nOne tab-separated line per sentence (line number, log-probability, target tokens with EOS,\nperplexity), then a line starting with `total` for the whole corpus."
    )]
    Score(ScoreArgs),
    /// Draw a run's training loss, validation perplexity and BLEU against the update step.
    #[command(
        after_help = "Example:\n  nmt plot checkpoints/de-en                   # writes checkpoints/de-en/plot.svg\n  nmt plot checkpoints/de-en --out curves.png"
    )]
    Plot(PlotArgs),
    /// Describe a model: configuration, parameters, vocabularies, training and evaluations.
    #[command(
        after_help = "Examples:\n  nmt info checkpoints/de-en\n  nmt info org/name@main --offline"
    )]
    Info(InfoArgs),
    /// Time the model's training step or decoding on random data (the flags and figures of
    /// shared/bench/pytorch_lstm_s2s.py; `make bench` runs both side by side).
    #[command(
        after_help = "Examples:\n  nmt bench train --layers 4 --threads 2\n  nmt bench decode-beam --beam 5 --batch 32 --json results.jsonl"
    )]
    Bench(crate::bench::BenchArgs),
    /// Experiments made of several training runs.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  nmt completions bash > ~/.local/share/bash-completion/completions/nmt"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Manage corpora.
    #[command(subcommand)]
    Corpus(CorpusCommand),
}

#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Find Multi30k ($NMT_CORPORA/multi30k, else corpora/multi30k) or download it there.
    #[command(
        after_help = "Example:\n  nmt corpus fetch multi30k\n  NMT_CORPORA=../shared/corpora nmt corpus fetch multi30k"
    )]
    Fetch {
        /// The corpus to fetch (only multi30k is known).
        name: String,
        /// Download cache folder.
        #[arg(long, default_value = "corpora/multi30k")]
        dir: PathBuf,
    },
}

impl Command {
    /// The `--threads` of a command that computes (None for the others).
    pub fn threads(&self) -> Option<usize> {
        match self {
            Command::Train(a) => Some(a.threads),
            Command::Translate(a) => Some(a.search.threads),
            Command::Eval(a) => Some(a.search.threads),
            Command::Score(a) => Some(a.threads),
            Command::Bench(a) => Some(a.threads),
            Command::Experiment(ExperimentCommand::Depth(a)) => Some(a.threads),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Train one model per LSTM depth under equal settings and compare perplexity, BLEU and
    /// chrF (Sutskever et al. 2014: each added layer lowered perplexity by nearly 10 %).
    #[command(
        after_help = "Examples:\n  nmt experiment depth --preset smoke --out checkpoints/depth-smoke\n  nmt experiment depth --corpus multi30k --pair de-en --out checkpoints/depth-de-en\n  nmt experiment depth --corpus multi30k --out checkpoints/depth-sgd --optimizer sgd --lr 0.7 --schedule paper\n\nDepths take turns, one epoch each, so an unfinished sweep compares them at equal epochs;\neach stops on its own (--patience epochs without a better validation perplexity, or\n--max-epochs). Run the same command again to continue after a kill or Ctrl-C: stopped\ndepths are skipped and the others resume from their checkpoints (a larger --max-epochs\ntrains capped depths on). Writes DIR/experiment.json (the shared settings),\nDIR/tokenizer.json, DIR/depth-N/ (a run folder per depth, with evaluation.json and\ntest.hyp), DIR/results.json, DIR/results.md and DIR/depth.png + DIR/depth.svg."
    )]
    Depth(DepthArgs),
}

/// `nmt experiment depth`'s options; unset ones come from --preset.
#[derive(Debug, Args)]
pub struct DepthArgs {
    /// Experiment folder (created; running again continues the sweep in it).
    #[arg(long)]
    pub out: PathBuf,
    /// Defaults for every option below and the data (multi30k: Multi30k de-en; smoke:
    /// corpora/toy).
    #[arg(long, value_enum, default_value_t = crate::experiment::depth::Preset::Multi30k)]
    pub preset: crate::experiment::depth::Preset,
    /// Depths to train, comma-separated (default: the preset's, multi30k 1,2,3,4).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Training source file (with --tgt-file and the validation and test files, instead of
    /// --corpus).
    #[arg(long)]
    pub src_file: Option<PathBuf>,
    /// Training target file, line-aligned with --src-file.
    #[arg(long)]
    pub tgt_file: Option<PathBuf>,
    /// Validation source file (perplexity after every epoch picks each depth's best model).
    #[arg(long)]
    pub valid_src_file: Option<PathBuf>,
    /// Validation target file.
    #[arg(long)]
    pub valid_tgt_file: Option<PathBuf>,
    /// Test source file (perplexity, BLEU and chrF of each depth's best model).
    #[arg(long)]
    pub test_src_file: Option<PathBuf>,
    /// Test target file.
    #[arg(long)]
    pub test_tgt_file: Option<PathBuf>,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// LSTM cells per layer.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Embedding size.
    #[arg(long)]
    pub emb: Option<usize>,
    /// Size of the joint BPE vocabulary (one tokenizer for both sides, trained once).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// sgd or adam (another optimizer than the preset's brings its usual lr and schedule:
    /// sgd 0.7 with the paper's halving, adam 0.002 halved on plateaus).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Plateau schedule: validations without a better perplexity before halving the rate.
    #[arg(long)]
    pub plateau_patience: Option<usize>,
    /// Dropout on embeddings, between layers and on decoder outputs.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Initial forget-gate bias (0: the paper's uniform init).
    #[arg(long)]
    pub forget_bias: Option<f64>,
    /// Clip the global gradient norm to this.
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// Padded tokens (source + target) per batch.
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// A depth stops after this many epochs without a better validation perplexity.
    #[arg(long)]
    pub patience: Option<usize>,
    /// A depth stops after this many epochs at most.
    #[arg(long)]
    pub max_epochs: Option<usize>,
    /// Seed of weights, data order and dropout (the same for every depth).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Beam width of the test translations.
    #[arg(long)]
    pub beam: Option<usize>,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Where parallel data comes from: explicit files, or a known corpus.
#[derive(Debug, Clone, Args, Serialize)]
pub struct CorpusArgs {
    /// Take train/val/test files from a known corpus (multi30k) instead of file flags.
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
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar or epoch lines.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    /// text: progress bar; json: metrics records on stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    #[serde(skip)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Beam width (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Longest output, as a multiple of the source's subword count.
    #[arg(long, default_value_t = 2.0)]
    pub max_len_ratio: f32,
    /// No end of sentence before this many output subwords.
    #[arg(long, default_value_t = 0)]
    pub min_len: usize,
    /// How scores of different lengths compare: none, average (log-prob / length^alpha)
    /// or gnmt (log-prob / ((5 + length) / 6)^alpha).
    #[arg(long, value_enum, default_value_t = LengthPenalty::Average)]
    pub length_penalty: LengthPenalty,
    /// The length penalty's alpha (gnmt is usually run with 0.6-1.0).
    #[arg(long, default_value_t = 1.0)]
    pub length_alpha: f32,
    /// Sentences decoded together.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Never use the network for Hub models (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

/// How translations are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One translation per line (n-best: n lines per sentence).
    Plain,
    /// sentence id, rank, score, text (tab-separated; ids and ranks from 1).
    Tsv,
    /// One JSON object per line: {"id", "rank", "score", "log_prob", "text"}.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Model folder written by `nmt train`, or a Hub repo id org/name[@revision]; repeat for
    /// an ensemble (log-probabilities are averaged; one target vocabulary is required).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Hypotheses to print per sentence (at most --beam).
    #[arg(long, default_value_t = 1)]
    pub n_best: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Plain)]
    pub format: OutputFormat,
    /// Read sentences from this file (one per line) instead of stdin.
    #[arg(long, conflicts_with = "text")]
    pub input: Option<PathBuf>,
    /// Write translations here instead of stdout (an existing file needs --overwrite).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replace an existing --output file.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Sentences to translate.
    pub text: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model folder(s) or Hub repo ids to translate with (repeat for an ensemble); without
    /// it, --hyp-file is scored.
    #[arg(
        long,
        required_unless_present = "hyp_file",
        conflicts_with = "hyp_file"
    )]
    pub model: Vec<String>,
    /// Translations to score (instead of translating with --model).
    #[arg(long, requires = "ref_file")]
    pub hyp_file: Option<PathBuf>,
    /// Source sentences (with --model).
    #[arg(long)]
    pub src_file: Option<PathBuf>,
    /// Reference translations, line-aligned with --src-file or --hyp-file.
    #[arg(long)]
    pub ref_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Split of --corpus to score.
    #[arg(long, default_value = "test_2016_flickr")]
    pub split: String,
    /// Also write the translations to this file (an existing file needs --overwrite).
    #[arg(long)]
    pub hyp_output: Option<PathBuf>,
    /// Replace an existing --hyp-output file.
    #[arg(long)]
    pub overwrite: bool,
    /// Also print the first N sources with their translations and references.
    #[arg(long, default_value_t = 0)]
    pub show: usize,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model folder written by `nmt train`, or a Hub repo id org/name[@revision].
    #[arg(long)]
    pub model: String,
    /// Never use the network for Hub models (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Source sentences.
    #[arg(long)]
    pub src_file: PathBuf,
    /// Translations to score, line-aligned with --src-file.
    #[arg(long)]
    pub tgt_file: PathBuf,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run folder written by `nmt train` (it reads DIR/metrics.jsonl).
    pub dir: PathBuf,
    /// Picture to write, .svg or .png (default: DIR/plot.svg, replaced on each call).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Model folder, or a Hub repo id org/name[@revision].
    pub model: String,
    /// Never use the network for Hub models (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}
