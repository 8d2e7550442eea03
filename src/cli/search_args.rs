//! The flags of the commands that load a model: translate, eval, score, and of plot and info.

use std::path::PathBuf;

use clap::Args;

use super::CorpusArgs;
use crate::config::LengthPenalty;

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
    /// cpu, cuda, cuda:N (the N-th GPU) or metal.
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
    /// Also print each translation's hard alignment from the attention (models trained
    /// with --attention): `text ||| 0-0 2-1`, source-target subword indices from 0, the
    /// source subword each target subword attended to most (a TSV column, a JSON field).
    #[arg(long)]
    pub alignments: bool,
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
    /// Split of --corpus to score (default: its test split; multi30k: train, val,
    /// test_2016_flickr; europarl: train, val, test).
    #[arg(long)]
    pub split: Option<String>,
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
    /// cpu, cuda, cuda:N (the N-th GPU) or metal.
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
