//! `nmt experiment depth`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::CorpusArgs;
use crate::config::{Attention, OptimizerKind, Schedule};
use crate::experiment::sweep::Preset;

/// `nmt experiment depth`'s options; unset ones come from --preset.
#[derive(Debug, Args)]
pub struct DepthArgs {
    /// Experiment folder (created; running again continues the sweep in it).
    #[arg(long)]
    pub out: PathBuf,
    /// Defaults for every option below and the data (multi30k: Multi30k de-en; smoke:
    /// corpora/toy).
    #[arg(long, value_enum, default_value_t = Preset::Multi30k)]
    pub preset: Preset,
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
    /// Luong attention in every depth's model: none (the preset's), dot or general.
    #[arg(long, value_enum)]
    pub attention: Option<Attention>,
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
    /// cpu, cuda, cuda:N (the N-th GPU) or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}
