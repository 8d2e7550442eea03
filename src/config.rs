//! Model, training and search settings: serde for config.json, `Default`s from the paper
//! where they apply, and `validate()` so bad values fail before any work starts.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the run-folder format written in config.json; loading refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// Special token ids every tokenizer of a run must agree on.
pub const PAD_ID: u32 = 0;
pub const BOS_ID: u32 = 1;
pub const EOS_ID: u32 = 2;
pub const UNK_ID: u32 = 3;

/// Everything needed to rebuild the network (stored as config.json in the run folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format_version: u32,
    pub src_vocab: usize,
    pub tgt_vocab: usize,
    pub emb: usize,
    pub hidden: usize,
    pub layers: usize,
    pub pad_id: u32,
    pub bos_id: u32,
    pub eos_id: u32,
    /// Sutskever et al.: the encoder reads the source backwards.
    pub reverse_source: bool,
    /// Luong et al. (2015) global attention over the encoder's top layer, with input
    /// feeding; `none` is the paper's model (and what a config.json without the field means).
    #[serde(default)]
    pub attention: Attention,
}

/// How the decoder looks at the source (Luong et al. 2015, global attention).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    /// No attention: the encoder's final state is all the decoder sees (Sutskever et al.).
    #[default]
    None,
    /// score(h_t, h_s) = h_t . h_s.
    Dot,
    /// score(h_t, h_s) = (W_a h_t) . h_s, with a learned `W_a (H, H)`.
    General,
}

impl Attention {
    pub fn is_on(self) -> bool {
        self != Attention::None
    }

    pub fn name(self) -> &'static str {
        match self {
            Attention::None => "none",
            Attention::Dot => "dot",
            Attention::General => "general",
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            format_version: FORMAT_VERSION,
            src_vocab: 8000,
            tgt_vocab: 8000,
            emb: 256,
            hidden: 256,
            layers: 4,
            pad_id: PAD_ID,
            bos_id: BOS_ID,
            eos_id: EOS_ID,
            reverse_source: true,
            attention: Attention::None,
        }
    }
}

impl ModelConfig {
    /// How many weights the model has (as `model::params::param_count`, in u64 so that any
    /// sizes below `MAX_DIMENSION` fit).
    pub fn weight_count(&self) -> u64 {
        let (e, h, l) = (self.emb as u64, self.hidden as u64, self.layers as u64);
        let lstm = 4 * h * (e + h) + 8 * h + (l.saturating_sub(1)) * (4 * h * (2 * h) + 8 * h);
        let (sv, tv) = (self.src_vocab as u64, self.tgt_vocab as u64);
        // Attention: input feeding widens decoder layer 0's input by H; W_out (H, 2H), and
        // W_a (H, H) for `general`.
        let attention = match self.attention {
            Attention::None => 0,
            Attention::Dot => 4 * h * h + 2 * h * h,
            Attention::General => 4 * h * h + 3 * h * h,
        };
        (sv + tv) * e + 2 * lstm + attention + tv * h + tv
    }

    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(Error::Config(format!(
                "format_version {} is not supported by this nmt (it reads version {FORMAT_VERSION}); use the nmt release that wrote the model",
                self.format_version
            )));
        }
        if !(1..=8).contains(&self.layers) {
            return Err(Error::Config(format!(
                "layers must be between 1 and 8, got {}",
                self.layers
            )));
        }
        for (name, v) in [("emb", self.emb), ("hidden", self.hidden)] {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        for (name, v) in [("src_vocab", self.src_vocab), ("tgt_vocab", self.tgt_vocab)] {
            if v <= UNK_ID as usize {
                return Err(Error::Config(format!(
                    "{name} must be larger than the {} special tokens, got {v}",
                    UNK_ID + 1
                )));
            }
        }
        for (name, v) in [
            ("emb", self.emb),
            ("hidden", self.hidden),
            ("src_vocab", self.src_vocab),
            ("tgt_vocab", self.tgt_vocab),
        ] {
            if v > MAX_DIMENSION {
                return Err(Error::Config(format!(
                    "{name} must be at most {MAX_DIMENSION}, got {v}"
                )));
            }
        }
        let bytes = 4 * self.weight_count();
        if bytes > MAX_MODEL_BYTES {
            return Err(Error::Config(format!(
                "a model of {} layers, emb {}, hidden {} and vocabularies {}/{} needs {:.1} GiB of \
                 weights (at most {} GiB): choose smaller sizes",
                self.layers,
                self.emb,
                self.hidden,
                self.src_vocab,
                self.tgt_vocab,
                bytes as f64 / (1u64 << 30) as f64,
                MAX_MODEL_BYTES >> 30
            )));
        }
        let smaller = self.src_vocab.min(self.tgt_vocab);
        for (name, id) in [
            ("pad_id", self.pad_id),
            ("bos_id", self.bos_id),
            ("eos_id", self.eos_id),
        ] {
            if id as usize >= smaller {
                return Err(Error::Config(format!(
                    "{name} {id} is outside the vocabularies ({} source, {} target entries)",
                    self.src_vocab, self.tgt_vocab
                )));
            }
        }
        Ok(())
    }
}

/// The largest embedding, hidden or vocabulary size accepted: far above any model this
/// toolkit trains, low enough that sizes multiplied together cannot overflow.
pub const MAX_DIMENSION: usize = 1 << 20;

/// The largest model accepted, in bytes of f32 weights.
pub const MAX_MODEL_BYTES: u64 = 16 << 30;

/// Which optimizer updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain SGD with the paper's schedule: constant lr, halved every half epoch after epoch 5.
    Sgd,
    /// Adam (beta 0.9/0.999) at a constant learning rate.
    Adam,
}

impl OptimizerKind {
    /// The learning rate used when none is given: the paper's 0.7 for SGD, 0.002 for Adam.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.7,
            OptimizerKind::Adam => 0.002,
        }
    }

    /// The schedule used when none is given: the paper's halving for SGD; for Adam a
    /// constant rate, or halving on plateaus when every epoch is validated (as in the depth
    /// sweep, whose stopping rule needs those validations anyway).
    pub fn default_schedule(self, validated_every_epoch: bool) -> Schedule {
        match self {
            OptimizerKind::Sgd => Schedule::Paper,
            OptimizerKind::Adam if validated_every_epoch => Schedule::Plateau,
            OptimizerKind::Adam => Schedule::Constant,
        }
    }
}

/// How the learning rate moves during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Sutskever et al.: constant for 5 epochs, then halved every half epoch.
    Paper,
    /// Constant.
    Constant,
    /// Halved whenever validation perplexity has not improved for `plateau_patience` checks.
    Plateau,
    /// Linear warm-up over `warmup_steps`, then proportional to 1/sqrt(step).
    InverseSqrt,
    /// Linear warm-up over `warmup_steps`, then linear decay to zero at the last step.
    Linear,
}

/// The validation metric that picks the best checkpoint and drives early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Teacher-forced validation perplexity (lower is better).
    Ppl,
    /// BLEU of validation translations (higher is better; needs --valid-bleu).
    Bleu,
}

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Stop after this many updates (0: no limit).
    pub max_steps: usize,
    /// Token budget of a batch (padded source + target tokens).
    pub batch_tokens: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub plateau_patience: usize,
    /// Clip the global gradient norm to this value.
    pub clip_norm: f64,
    pub seed: u64,
    /// Pairs with more subword tokens than this on either side are skipped.
    pub max_len: usize,
    /// Dropout on embeddings, between LSTM layers and on decoder outputs.
    pub dropout: f32,
    /// Initial forget-gate bias of every LSTM layer (the other weights are uniform in
    /// [-0.08, 0.08]); 1.0 (Jozefowicz et al. 2015) helps deep stacks start learning.
    #[serde(default)]
    pub forget_bias: f32,
    pub label_smoothing: f64,
    /// Validate every N updates (0: only at epoch ends).
    pub valid_every: usize,
    /// Also translate the validation set (greedy, or beam `valid_beam`) and report BLEU.
    pub valid_bleu: bool,
    pub valid_beam: usize,
    /// Save a checkpoint every N updates (0: only at epoch ends).
    pub save_every: usize,
    /// Step checkpoints to keep (the best one is kept as well).
    pub keep_last: usize,
    /// Stop after this many validations without improvement (0: never).
    pub patience: usize,
    pub metric: Metric,
    /// Stop after this many non-finite updates in a row.
    pub max_bad_steps: usize,
    /// Write a metrics line every N updates.
    pub log_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            max_steps: 0,
            batch_tokens: 2560,
            optimizer: OptimizerKind::Sgd,
            lr: 0.7,
            schedule: Schedule::Paper,
            warmup_steps: 4000,
            plateau_patience: 1,
            clip_norm: 5.0,
            seed: 1234,
            max_len: 80,
            dropout: 0.0,
            forget_bias: 0.0,
            label_smoothing: 0.0,
            valid_every: 0,
            valid_bleu: false,
            valid_beam: 1,
            save_every: 0,
            keep_last: 3,
            patience: 0,
            metric: Metric::Ppl,
            max_bad_steps: 10,
            log_every: 50,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 && self.max_steps == 0 {
            return Err(Error::Config(
                "epochs is 0 and max_steps is 0: give at least one epoch or step".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::Config(format!(
                "lr must be a positive number, got {}",
                self.lr
            )));
        }
        if self.clip_norm.is_nan() || self.clip_norm <= 0.0 {
            return Err(Error::Config(format!(
                "clip_norm must be positive, got {}",
                self.clip_norm
            )));
        }
        if self.max_len < 1 {
            return Err(Error::Config("max_len must be at least 1".into()));
        }
        let one_pair = self.max_len.saturating_add(1).saturating_mul(2);
        if self.batch_tokens < one_pair {
            return Err(Error::Config(format!(
                "batch_tokens {} cannot hold one pair of max_len {} (needs at least {one_pair})",
                self.batch_tokens, self.max_len,
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if !self.forget_bias.is_finite() {
            return Err(Error::Config(format!(
                "forget_bias must be a finite number, got {}",
                self.forget_bias
            )));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::Config(format!(
                "label_smoothing must be in [0, 1), got {}",
                self.label_smoothing
            )));
        }
        if self.metric == Metric::Bleu && !self.valid_bleu {
            return Err(Error::Config(
                "metric bleu needs --valid-bleu (validation translations)".into(),
            ));
        }
        for (name, v) in [
            ("keep_last", self.keep_last),
            ("max_bad_steps", self.max_bad_steps),
            ("log_every", self.log_every),
            ("valid_beam", self.valid_beam),
            ("plateau_patience", self.plateau_patience),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if matches!(self.schedule, Schedule::InverseSqrt | Schedule::Linear)
            && self.warmup_steps == 0
        {
            return Err(Error::Config(
                "warmup_steps must be at least 1 for this schedule".into(),
            ));
        }
        Ok(())
    }
}

/// How hypotheses of different lengths are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LengthPenalty {
    /// Raw log-probability (favours short outputs).
    None,
    /// log-probability / length^alpha (alpha 1: per-token average).
    Average,
    /// GNMT (Wu et al. 2016): log-probability / ((5 + length) / 6)^alpha.
    Gnmt,
}

impl LengthPenalty {
    /// The divisor of a hypothesis of `len` tokens (EOS included). Non-decreasing in `len`
    /// for alpha >= 0, which the beam's stop rule relies on.
    pub fn divisor(self, len: usize, alpha: f32) -> f32 {
        match self {
            LengthPenalty::None => 1.0,
            LengthPenalty::Average => (len as f32).powf(alpha),
            LengthPenalty::Gnmt => ((5.0 + len as f32) / 6.0).powf(alpha),
        }
    }
}

/// The largest `--max-len-ratio`: longer limits only let a broken model babble for longer
/// (search time grows with the output length).
pub const MAX_LEN_RATIO_LIMIT: f32 = 100.0;

/// Settings of beam search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Beam width K; 1 is greedy.
    pub beam: usize,
    /// Hypotheses returned per sentence (at most `beam`).
    pub n_best: usize,
    /// A translation may have at most ceil(ratio * source tokens) + 1 tokens (EOS included).
    pub max_len_ratio: f32,
    /// EOS is not allowed before this many output tokens.
    pub min_len: usize,
    pub length_penalty: LengthPenalty,
    /// Exponent of the length penalty.
    pub length_alpha: f32,
    /// Sentences decoded together.
    pub batch_size: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            beam: 5,
            n_best: 1,
            max_len_ratio: 2.0,
            min_len: 0,
            length_penalty: LengthPenalty::Average,
            length_alpha: 1.0,
            batch_size: 32,
        }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<()> {
        if self.beam == 0 {
            return Err(Error::Config("beam must be at least 1".into()));
        }
        if self.n_best == 0 || self.n_best > self.beam {
            return Err(Error::Config(format!(
                "n-best must be between 1 and the beam width ({}), got {}",
                self.beam, self.n_best
            )));
        }
        if !(self.max_len_ratio > 0.0 && self.max_len_ratio <= MAX_LEN_RATIO_LIMIT) {
            return Err(Error::Config(format!(
                "--max-len-ratio must be above 0 and at most {MAX_LEN_RATIO_LIMIT} (outputs that \
                 many times longer than their source), got {}",
                self.max_len_ratio
            )));
        }
        if !(self.length_alpha >= 0.0 && self.length_alpha.is_finite()) {
            return Err(Error::Config(format!(
                "length alpha must be >= 0, got {}",
                self.length_alpha
            )));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("batch-size must be at least 1".into()));
        }
        Ok(())
    }

    /// Longest output (EOS included) for a source of `src_len` tokens.
    pub fn max_output_len(&self, src_len: usize) -> usize {
        // `as` saturates, so even a ratio that skipped `validate` cannot overflow.
        ((self.max_len_ratio * src_len.max(1) as f32).ceil() as usize).saturating_add(1)
    }

    /// The ranking score of a hypothesis with summed `log_prob` and `len` tokens.
    pub fn normalise(&self, log_prob: f32, len: usize) -> f32 {
        log_prob / self.length_penalty.divisor(len, self.length_alpha)
    }
}
