//! The depth sweep: one training run per depth in DIR/depth-N, all with the same tokenizer
//! (trained once, joint over both sides), data order, seed, sizes, optimizer, schedule,
//! dropout and stopping rule. Depths advance one epoch at a time in turn, so a sweep cut
//! short still compares every depth at equal epochs; each depth resumes from its own
//! checkpoints and stops on its own (early stopping, or the epoch cap).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::results::{self, Evaluation};
use crate::checkpoint;
use crate::config::{ModelConfig, OptimizerKind, Schedule, SearchConfig, TrainConfig};
use crate::data::corpus::read_parallel;
use crate::error::{Error, Result};
use crate::inference::{teacher_forced_nll, Translator};
use crate::metrics::{perplexity, Bleu, Chrf};
use crate::tokenizer::SubwordTokenizer;
use crate::train::{self, encode_pairs, state, StopReason, TrainSpec};

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

/// Flattened `key = value` pairs of a JSON value, for naming what differs.
fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, x, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Creates DIR with its settings, or checks that DIR's sweep was made with the same ones.
/// A folder holding something else is never touched.
fn prepare(spec: &DepthSpec) -> Result<()> {
    let out = &spec.out;
    let file = out.join(SETTINGS_FILE);
    let to_json = |s: &Settings| serde_json::to_value(s).map_err(|e| Error::Config(e.to_string()));
    if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::read(&file, e))?;
        let mut saved: Settings = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{} is not a depth-experiment settings file ({e}); choose another --out",
                file.display()
            ))
        })?;
        // The epoch cap may be raised (or lowered) between calls.
        saved.train.epochs = spec.settings.train.epochs;
        if saved != spec.settings {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            leaves("", &to_json(&saved)?, &mut a);
            leaves("", &to_json(&spec.settings)?, &mut b);
            let diff: Vec<String> = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("{} was {} and is now {}", x.0, x.1, y.1))
                .collect();
            return Err(Error::Config(format!(
                "{} holds a depth sweep made with other settings ({}); every depth must share them. Run it with the same options, or choose another --out",
                out.display(),
                diff.join("; ")
            )));
        }
    } else if out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Config(format!(
            "{} is not empty and holds no depth experiment ({SETTINGS_FILE}); choose another --out",
            out.display()
        )));
    } else {
        std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))?;
    }
    let text =
        serde_json::to_string_pretty(&spec.settings).map_err(|e| Error::Config(e.to_string()))?;
    checkpoint::write_text_atomic(&file, &text)
}

/// The sweep's joint tokenizer: DIR/tokenizer.json, trained on both training sides once.
fn tokenizer(spec: &DepthSpec) -> Result<PathBuf> {
    let path = spec.out.join(TOKENIZER_FILE);
    if !path.is_file() {
        let (src, tgt) = read_parallel(&spec.settings.files.train.0, &spec.settings.files.train.1)?;
        let tok = SubwordTokenizer::train(src.iter().chain(&tgt), spec.settings.vocab_size)?;
        checkpoint::write_atomic(&path, |tmp| tok.save(tmp))?;
    }
    Ok(path)
}

/// The training run of depth `layers` up to `epochs` whole epochs.
fn train_spec(
    spec: &DepthSpec,
    layers: usize,
    epochs: usize,
    tok: &Path,
    resume: bool,
) -> TrainSpec {
    let s = &spec.settings;
    let out = depth_dir(&spec.out, layers);
    let train = TrainConfig {
        epochs,
        ..s.train.clone()
    };
    TrainSpec {
        src_file: s.files.train.0.clone(),
        tgt_file: s.files.train.1.clone(),
        valid: Some(s.files.valid.clone()),
        model: ModelConfig {
            layers,
            hidden: s.hidden,
            emb: s.emb,
            ..ModelConfig::default()
        },
        vocab_size: s.vocab_size,
        tokenizer: Some(tok.to_path_buf()),
        // A depth folder without checkpoints is this sweep's own unfinished start.
        overwrite: !resume,
        resume,
        progress: spec.progress,
        log_json: false,
        config_toml: train_toml(s, layers, &out, &train, tok),
        command: spec.command.clone(),
        out,
        train,
    }
}

/// The depth's options as `nmt train` reads them (DIR/depth-N/train_config.toml), so one
/// depth can also be continued alone with `nmt train --out DIR/depth-N --resume`.
fn train_toml(s: &Settings, layers: usize, out: &Path, train: &TrainConfig, tok: &Path) -> String {
    let mut t = toml::Table::new();
    let path = |p: &Path| toml::Value::String(p.display().to_string());
    t.insert("src_file".into(), path(&s.files.train.0));
    t.insert("tgt_file".into(), path(&s.files.train.1));
    t.insert("valid_src_file".into(), path(&s.files.valid.0));
    t.insert("valid_tgt_file".into(), path(&s.files.valid.1));
    t.insert("out".into(), path(out));
    t.insert("tokenizer".into(), path(tok));
    t.insert("layers".into(), toml::Value::Integer(layers as i64));
    t.insert("hidden".into(), toml::Value::Integer(s.hidden as i64));
    t.insert("emb".into(), toml::Value::Integer(s.emb as i64));
    t.insert(
        "vocab_size".into(),
        toml::Value::Integer(s.vocab_size as i64),
    );
    if let Ok(toml::Value::Table(train)) = toml::Value::try_from(train) {
        t.extend(train);
    }
    toml::to_string(&t).unwrap_or_default()
}

/// Runs the sweep in `spec.out` until every depth has stopped or `interrupt` is raised,
/// evaluating each depth's best model on the test set after each round of epochs and
/// writing DIR/results.json, DIR/results.md and DIR/depth.{png,svg}.
pub fn run(spec: &DepthSpec, device: &Device, interrupt: &AtomicBool) -> Result<SweepEnd> {
    let s = &spec.settings;
    s.train.validate()?;
    if spec.depths.is_empty() {
        return Err(Error::Config("give at least one depth in --layers".into()));
    }
    for &d in &spec.depths {
        ModelConfig {
            layers: d,
            hidden: s.hidden,
            emb: s.emb,
            ..ModelConfig::default()
        }
        .validate()?;
    }
    for (a, b) in [&s.files.train, &s.files.valid, &s.files.test] {
        read_parallel(a, b)?;
    }
    prepare(spec)?;
    let tok = tokenizer(spec)?;
    let say = |line: String| {
        if spec.progress {
            eprintln!("{line}");
        }
    };
    loop {
        // The next round: every unstopped depth trains up to one epoch past the least trained.
        let mut open = Vec::new();
        for &d in &spec.depths {
            let p = progress(&depth_dir(&spec.out, d))?;
            if !p.as_ref().is_some_and(|p| s.stopped(p)) {
                open.push((d, p));
            }
        }
        let Some(target) = open
            .iter()
            .map(|(_, p)| p.map_or(0, |p| p.epochs) + 1)
            .min()
        else {
            break;
        };
        for (d, p) in open {
            if p.is_some_and(|p| p.epochs >= target) {
                continue;
            }
            if interrupt.load(Ordering::SeqCst) {
                // No test evaluation after Ctrl-C: the user is waiting for the exit.
                results::write_all(spec)?;
                return Ok(SweepEnd::Interrupted);
            }
            say(format!(
                "depth {d}: training epoch {target} of at most {}",
                s.train.epochs
            ));
            let summary = train::run(
                &train_spec(spec, d, target, &tok, p.is_some()),
                device,
                interrupt,
            )
            .map_err(|e| {
                Error::Training(format!(
                    "depth {d} ({}): {e}",
                    depth_dir(&spec.out, d).display()
                ))
            })?;
            if summary.reason == StopReason::Interrupted {
                // No test evaluation after Ctrl-C: the user is waiting for the exit.
                results::write_all(spec)?;
                return Ok(SweepEnd::Interrupted);
            }
            // A finished call must have reached `target` epochs or stopped the depth.
            let after = progress(&depth_dir(&spec.out, d))?;
            if !after.is_some_and(|p| p.epochs >= target || s.stopped(&p)) {
                return Err(Error::Training(format!(
                    "depth {d} did not reach epoch {target} ({:?}); see {}",
                    summary.reason,
                    depth_dir(&spec.out, d)
                        .join(crate::train::log::LOG_FILE)
                        .display()
                )));
            }
        }
        report(spec, device, &tok, &say)?;
    }
    report(spec, device, &tok, &say)?;
    Ok(SweepEnd::Finished)
}

/// Evaluates the best model of every depth whose best checkpoint changed, then rewrites
/// the results files.
fn report(spec: &DepthSpec, device: &Device, tok: &Path, say: &dyn Fn(String)) -> Result<()> {
    for &d in &spec.depths {
        let dir = depth_dir(&spec.out, d);
        let Some(p) = progress(&dir)? else { continue };
        if results::read_evaluation(&dir)
            .is_some_and(|e| e.best_step == p.best_step && e.beam == spec.settings.beam)
        {
            continue;
        }
        let e = evaluate(&dir, &spec.settings, p.best_step, tok, device)?;
        say(format!(
            "depth {d}: best model (step {}) test perplexity {:.2}, BLEU {:.2}, chrF2 {:.2}",
            e.best_step, e.test_ppl, e.test_bleu, e.test_chrf
        ));
        results::write_evaluation(&dir, &e)?;
    }
    results::write_all(spec)
}

/// Test perplexity (teacher forced), BLEU and chrF (beam search) of the model in `dir`.
fn evaluate(
    dir: &Path,
    s: &Settings,
    best_step: usize,
    tok: &Path,
    device: &Device,
) -> Result<Evaluation> {
    let loaded = checkpoint::load(dir, device)?;
    let tok = SubwordTokenizer::from_file(tok)?;
    let (src, refs) = read_parallel(&s.files.test.0, &s.files.test.1)?;
    let (examples, _) = encode_pairs(&src, &refs, &tok, &tok, usize::MAX)?;
    let (nll, n) = teacher_forced_nll(&loaded.model, &examples, s.train.batch_tokens, device)?;
    let search = SearchConfig {
        beam: s.beam,
        ..SearchConfig::default()
    };
    let hyps =
        Translator::new(vec![(dir.display().to_string(), loaded)], search)?.translate(&src)?;
    let mut text = hyps.join("\n");
    text.push('\n');
    checkpoint::write_text_atomic(&dir.join(HYP_FILE), &text)?;
    Ok(Evaluation {
        best_step,
        beam: s.beam,
        test_ppl: perplexity(nll, n),
        test_bleu: Bleu::corpus(&hyps, &refs).score,
        test_chrf: Chrf::corpus(&hyps, &refs).score,
    })
}
