//! What a depth sweep is: its files, shared settings and presets, the folder of each depth,
//! and where each depth stands. `depth` runs a sweep, `results` reports it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Attention, OptimizerKind, Schedule, TrainConfig};
use crate::error::Result;
use crate::train::state;

/// DIR/experiment.json: the settings every depth shares.
pub const SETTINGS_FILE: &str = "experiment.json";
/// DIR/tokenizer.json: the joint BPE tokenizer of every depth.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// DIR/depth-N/test.hyp: the test translations of depth N's best model.
pub const HYP_FILE: &str = "test.hyp";

/// Parallel files of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepFiles {
    pub train: (PathBuf, PathBuf),
    pub valid: (PathBuf, PathBuf),
    pub test: (PathBuf, PathBuf),
}

/// What every depth shares, kept in DIR/experiment.json; running the command again must
/// give the same (only the epoch cap may change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The preset the defaults came from (multi30k or smoke).
    pub preset: String,
    pub files: SweepFiles,
    /// Size of the joint BPE vocabulary (one tokenizer for both sides).
    pub vocab_size: usize,
    pub emb: usize,
    pub hidden: usize,
    /// Luong attention in every depth's model (a sweep file without it: none).
    #[serde(default)]
    pub attention: Attention,
    /// Training options of every depth; `epochs` is the cap on epochs per depth.
    pub train: TrainConfig,
    /// Beam width of the test translations.
    pub beam: usize,
}

/// Named sets of defaults for `nmt experiment depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Multi30k: depths 1-4, hidden/emb 256, joint BPE 8000, Adam 0.002 halved on plateaus,
    /// dropout 0.2, forget-gate bias 1, clip 5; stop after 3 epochs without a better
    /// validation perplexity or at 20 epochs; beam 5.
    Multi30k,
    /// A tiny sweep on corpora/toy (depths 1-2, hidden 32, batches of 400 tokens, 4 epochs)
    /// that runs in seconds.
    Smoke,
}

/// The values a preset stands for; the files come from elsewhere.
pub struct PresetValues {
    pub depths: Vec<usize>,
    pub vocab_size: usize,
    pub emb: usize,
    pub hidden: usize,
    pub train: TrainConfig,
    pub beam: usize,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Multi30k => "multi30k",
            Preset::Smoke => "smoke",
        }
    }

    pub fn values(self) -> PresetValues {
        let train = TrainConfig {
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Plateau,
            plateau_patience: 1,
            clip_norm: 5.0,
            forget_bias: 1.0,
            valid_every: 0,
            keep_last: 1,
            ..TrainConfig::default()
        };
        match self {
            Preset::Multi30k => PresetValues {
                depths: vec![1, 2, 3, 4],
                vocab_size: 8000,
                emb: 256,
                hidden: 256,
                train: TrainConfig {
                    lr: 0.002,
                    dropout: 0.2,
                    epochs: 20,
                    patience: 3,
                    log_every: 100,
                    ..train
                },
                beam: 5,
            },
            Preset::Smoke => PresetValues {
                depths: vec![1, 2],
                vocab_size: 300,
                emb: 32,
                hidden: 32,
                train: TrainConfig {
                    lr: 0.01,
                    batch_tokens: 400,
                    epochs: 4,
                    patience: 2,
                    log_every: 10,
                    ..train
                },
                beam: 5,
            },
        }
    }
}

/// Everything `nmt experiment depth` was asked to do.
#[derive(Debug, Clone)]
pub struct DepthSpec {
    pub settings: Settings,
    /// LSTM layers of each model, e.g. [1, 2, 3, 4].
    pub depths: Vec<usize>,
    pub out: PathBuf,
    /// Print a line per epoch and evaluation on stderr (and the trainer's progress bar).
    pub progress: bool,
    /// The command line, for the run cards and results.json.
    pub command: String,
}

/// How a sweep call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEnd {
    /// Every depth has stopped (early stopping or the epoch cap) and is evaluated.
    Finished,
    /// The interrupt flag was raised; everything done so far is saved and reported.
    Interrupted,
}

/// The run folder of depth `layers`.
pub fn depth_dir(out: &Path, layers: usize) -> PathBuf {
    out.join(format!("depth-{layers}"))
}

/// Where a depth stands, from its newest checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Whole epochs done.
    pub epochs: usize,
    /// Validations since the best one (early stopping counts these).
    pub since_best: usize,
    pub best_step: usize,
    pub train_secs: f64,
    pub target_tokens: usize,
}

/// The progress of the run in `dir` (None before its first checkpoint).
pub fn progress(dir: &Path) -> Result<Option<Progress>> {
    let Some((_, last)) = state::list(dir)?.pop() else {
        return Ok(None);
    };
    let st = state::read_state(&last)?;
    Ok(Some(Progress {
        epochs: st.epoch,
        since_best: st.validation.since_best,
        best_step: st.validation.best_step,
        train_secs: st.train_secs,
        target_tokens: st.target_tokens,
    }))
}

impl Settings {
    /// True when a depth at `p` has stopped: patience used up or the epoch cap reached.
    pub fn stopped(&self, p: &Progress) -> bool {
        self.status(Some(p)) != "training"
    }

    /// Where a depth stands, in words for the results table: not started, training,
    /// converged (patience used up) or epoch cap.
    pub fn status(&self, p: Option<&Progress>) -> &'static str {
        let tc = &self.train;
        match p {
            None => "not started",
            Some(p) if tc.patience > 0 && p.since_best >= tc.patience => "converged",
            Some(p) if p.epochs >= tc.epochs => "epoch cap",
            Some(_) => "training",
        }
    }
}
