//! Training a model from parallel text: tokenizers, batches, teacher-forced updates with
//! dropout and label smoothing, validation, checkpoints, exact resume and early stopping.

pub mod run_lock;
pub mod schedule;
pub mod state;
mod trainer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor, Var};

use crate::atomic_file;
use crate::card::{self, DataFile, RunInfo};
use crate::checkpoint;
use crate::config::{ModelConfig, TrainConfig};
use crate::data::batch::{encode_pairs, token_batches, Example};
use crate::data::corpus::read_parallel;
use crate::error::{Error, Result};
use crate::model::precision::Precision;
use crate::model::{params, Seq2Seq};
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::run_log::{self, RunLog};
use crate::tokenizer::SubwordTokenizer;
use schedule::Validation;
use state::TrainerState;

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
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// Draw a progress bar and print epoch lines on stderr.
    pub progress: bool,
    /// Print every metrics record as JSON on stdout.
    pub log_json: bool,
    /// The effective configuration, written to DIR/train_config.toml.
    pub config_toml: String,
    /// The command that started the run (for the model card).
    pub command: String,
    /// The products' precision (anything but f32 needs CUDA).
    pub precision: Precision,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// All epochs done.
    Completed,
    /// `max_steps` reached.
    MaxSteps,
    /// `patience` validations without improvement.
    EarlyStopped,
    /// The interrupt flag (Ctrl-C) was raised; a checkpoint was saved.
    Interrupted,
}

/// What a run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub reason: StopReason,
    pub steps: usize,
    pub epochs_done: usize,
    pub train_pairs: usize,
    pub skipped_pairs: usize,
    pub tokens_per_sec: f64,
    pub last_loss: f64,
    pub valid_ppl: Option<f64>,
    pub best: Option<f64>,
    pub skipped_updates: usize,
}

/// Files a run writes at the top of its folder.
const RUN_FILES: [&str; 10] = [
    card::RUN_INFO_FILE,
    card::CARD_FILE,
    card::EVALS_FILE,
    checkpoint::CONFIG_FILE,
    checkpoint::WEIGHTS_FILE,
    checkpoint::SRC_TOKENIZER_FILE,
    checkpoint::TGT_TOKENIZER_FILE,
    "train_config.toml",
    run_log::METRICS_FILE,
    run_log::LOG_FILE,
];

/// Makes `out` ready for a new run: refuses to replace a run unless asked to, and with
/// `overwrite` removes only what a run writes.
fn prepare_new_run(out: &Path, overwrite: bool) -> Result<()> {
    let holds_run = out.join(checkpoint::CONFIG_FILE).exists()
        || out.join(checkpoint::WEIGHTS_FILE).exists()
        || out.join(state::CHECKPOINTS_DIR).exists();
    if holds_run && !overwrite {
        return Err(Error::Config(format!(
            "{} already holds a training run; pass --resume to continue it, --overwrite to replace it, or choose another --out",
            out.display()
        )));
    }
    if holds_run {
        for f in RUN_FILES {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::write(&p, e))?;
            }
        }
        let ck = out.join(state::CHECKPOINTS_DIR);
        if ck.exists() {
            std::fs::remove_dir_all(&ck).map_err(|e| Error::write(&ck, e))?;
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))
}

/// Named variables for `tensors`, in name order, and a model built on them.
fn trainable(
    cfg: &ModelConfig,
    tensors: HashMap<String, Tensor>,
) -> Result<(Seq2Seq, Vec<(String, Var)>)> {
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let mut vars = Vec::new();
    let mut shared = HashMap::new();
    for name in names {
        let var = Var::from_tensor(&tensors[&name])?;
        shared.insert(name.clone(), var.as_tensor().clone());
        vars.push((name, var));
    }
    Ok((Seq2Seq::from_tensors(cfg, &shared)?, vars))
}

/// The validation set, read once: ids for perplexity, text for BLEU.
struct ValidSet {
    examples: Vec<Example>,
    src: Vec<String>,
    refs: Vec<String>,
}

/// The pieces a run works with.
struct Run<'a> {
    spec: &'a TrainSpec,
    cfg: ModelConfig,
    device: &'a Device,
    model: Seq2Seq,
    optimizer: Optimizer,
    state: TrainerState,
    src_tok: SubwordTokenizer,
    tgt_tok: SubwordTokenizer,
    valid: Option<ValidSet>,
    log: RunLog,
    last_loss: f64,
    last_valid_ppl: Option<f64>,
}

/// Trains as `spec` says and leaves the model in `spec.out`. `interrupt` is polled between
/// updates: when it is set, a checkpoint is saved and the run returns `Interrupted`.
pub fn run(spec: &TrainSpec, device: &Device, interrupt: &AtomicBool) -> Result<TrainSummary> {
    spec.train.validate()?;
    spec.precision.apply(device)?;
    let tc = &spec.train;
    let (src_lines, tgt_lines) = read_parallel(&spec.src_file, &spec.tgt_file)?;
    let valid_lines = match &spec.valid {
        Some((s, t)) => Some(read_parallel(s, t)?),
        None => None,
    };
    // Taken before anything in the folder changes; a resume of a folder that is not there
    // is refused below without creating it.
    let _lock = if spec.resume && !spec.out.is_dir() {
        None
    } else {
        Some(run_lock::acquire(&spec.out)?)
    };
    let log = RunLog::new(&spec.out, spec.log_json, spec.progress);
    let resume_from = if spec.resume {
        let all = state::list(&spec.out)?;
        let Some((_, last)) = all.last().cloned() else {
            return Err(Error::Config(format!(
                "--resume: {} holds no checkpoint to continue from; start a new run without --resume",
                spec.out.display()
            )));
        };
        Some(last)
    } else {
        prepare_new_run(&spec.out, spec.overwrite)?;
        None
    };
    let (src_tok, tgt_tok) = if resume_from.is_some() {
        let tok = |f: &str| SubwordTokenizer::from_file(&spec.out.join(f));
        (
            tok(checkpoint::SRC_TOKENIZER_FILE)?,
            tok(checkpoint::TGT_TOKENIZER_FILE)?,
        )
    } else {
        match &spec.tokenizer {
            Some(path) => {
                let tok = SubwordTokenizer::from_file(path)?;
                (tok.clone(), tok)
            }
            None => (
                SubwordTokenizer::train(src_lines.iter(), spec.vocab_size)?,
                SubwordTokenizer::train(tgt_lines.iter(), spec.vocab_size)?,
            ),
        }
    };
    let cfg = ModelConfig {
        src_vocab: src_tok.vocab_size(),
        tgt_vocab: tgt_tok.vocab_size(),
        ..spec.model.clone()
    };
    cfg.validate()?;
    let (examples, skipped_pairs) =
        encode_pairs(&src_lines, &tgt_lines, &src_tok, &tgt_tok, tc.max_len)?;
    if examples.is_empty() {
        return Err(Error::Corpus(format!(
            "no usable sentence pair in {} / {}: every pair had an empty side or more than {} tokens",
            spec.src_file.display(),
            spec.tgt_file.display(),
            tc.max_len
        )));
    }
    let valid = match &valid_lines {
        Some((s, t)) => Some(ValidSet {
            examples: encode_pairs(s, t, &src_tok, &tgt_tok, usize::MAX)?.0,
            src: s.clone(),
            refs: t.clone(),
        }),
        None => None,
    };

    let (tensors, optim_tensors, state) = match &resume_from {
        Some(path) => {
            let ck = state::load(path, device)?;
            params::check(&cfg, &ck.weights).map_err(|m| Error::checkpoint(path, m))?;
            params::check_finite(&ck.weights).map_err(|m| Error::checkpoint(path, m))?;
            // Checked before anything in DIR changes, so a refused resume leaves it as it was.
            let mut epoch_rng = Rng::from_state(ck.state.epoch_rng);
            let batches = token_batches(&examples, tc.batch_tokens, Some(&mut epoch_rng)).len();
            ck.state.check_epoch_batching(batches, &spec.out)?;
            (ck.weights, Some(ck.optimizer), ck.state)
        }
        None => {
            checkpoint::save_tokenizers(&spec.out, &src_tok, &tgt_tok)?;
            let mut data = vec![
                DataFile {
                    role: "training source".into(),
                    path: spec.src_file.clone(),
                    lines: src_lines.len(),
                },
                DataFile {
                    role: "training target".into(),
                    path: spec.tgt_file.clone(),
                    lines: tgt_lines.len(),
                },
            ];
            if let (Some((vs, vt)), Some((sl, _))) = (&spec.valid, &valid_lines) {
                data.push(DataFile {
                    role: "validation source".into(),
                    path: vs.clone(),
                    lines: sl.len(),
                });
                data.push(DataFile {
                    role: "validation target".into(),
                    path: vt.clone(),
                    lines: sl.len(),
                });
            }
            card::write_run_info(
                &spec.out,
                &RunInfo {
                    source_language: card::language_of(&spec.src_file)
                        .unwrap_or_else(|| "source".into()),
                    target_language: card::language_of(&spec.tgt_file)
                        .unwrap_or_else(|| "target".into()),
                    command: spec.command.clone(),
                    data,
                },
            )?;
            let st = TrainerState {
                step: 0,
                epoch: 0,
                batch_in_epoch: 0,
                batches_in_epoch: None,
                epoch_rng: Rng::new(tc.seed ^ 0x5EED_DA7A).state(),
                dropout_rng: Rng::new(tc.seed ^ 0x0D80_90A7).state(),
                validation: Validation::default(),
                bad_in_row: 0,
                skipped_updates: 0,
                target_tokens: 0,
                train_secs: 0.0,
            };
            let mut weights = params::init_uniform(&cfg, tc.seed, device)?;
            if tc.forget_bias != 0.0 {
                params::set_forget_bias(&cfg, &mut weights, tc.forget_bias)?;
            }
            (weights, None, st)
        }
    };
    let (model, vars) = trainable(&cfg, tensors)?;
    let model = model.with_precision(spec.precision);
    let mut optimizer = Optimizer::new(tc.optimizer, vars, tc.clip_norm)?;
    if let (Some(o), Some(path)) = (&optim_tensors, &resume_from) {
        optimizer.load_state(o).map_err(|e| match e {
            Error::Training(m) => Error::checkpoint(path.join("optimizer.safetensors"), m),
            other => other,
        })?;
        // Only now, with the whole checkpoint accepted, does the folder change.
        log.truncate_after(state.step)?;
        log.text(&format!(
            "resumed from {} (step {})",
            path.display(),
            state.step
        ))?;
    }
    atomic_file::write_text_atomic(&spec.out.join("train_config.toml"), &spec.config_toml)?;
    if resume_from.is_none() {
        checkpoint::save_model(&spec.out, &model)?;
        log.text(&format!(
            "model: {} layers, emb {}, hidden {}, vocab {}/{}, {} parameters; {} training pairs ({} skipped)",
            cfg.layers,
            cfg.emb,
            cfg.hidden,
            cfg.src_vocab,
            cfg.tgt_vocab,
            params::param_count(&cfg),
            examples.len(),
            skipped_pairs
        ))?;
    }
    let mut run = Run {
        spec,
        cfg,
        device,
        model,
        optimizer,
        state,
        src_tok,
        tgt_tok,
        valid,
        log,
        last_loss: f64::NAN,
        last_valid_ppl: None,
    };
    let reason = run.train_loop(&examples, interrupt)?;
    card::write_card(&spec.out)?;
    let st = &run.state;
    Ok(TrainSummary {
        reason,
        steps: st.step,
        epochs_done: st.epoch,
        train_pairs: examples.len(),
        skipped_pairs,
        tokens_per_sec: st.target_tokens as f64 / st.train_secs.max(1e-9),
        last_loss: run.last_loss,
        valid_ppl: run.last_valid_ppl,
        best: st.validation.best,
        skipped_updates: st.skipped_updates,
    })
}
