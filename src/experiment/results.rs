//! What a depth sweep reports: per depth the size, training time, perplexities, BLEU and
//! chrF, and the validation curve; written as DIR/results.json, DIR/results.md (tables) and
//! DIR/depth.png + DIR/depth.svg.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::sweep::{depth_dir, progress, DepthSpec, Settings, TOKENIZER_FILE};
use crate::atomic_file;
use crate::checkpoint;
use crate::config::ModelConfig;
use crate::data::download::sha256_file;
use crate::error::{Error, Result};
use crate::model::params;
use crate::run_log::METRICS_FILE;

/// Training pairs in the sample that `Evaluation::train_ppl` is measured on: every k-th pair
/// of the training files, k = ceil(pairs / TRAIN_SAMPLE), the same for every depth.
pub const TRAIN_SAMPLE: usize = 5000;

/// DIR/depth-N/evaluation.json: the test scores of depth N's best model.
pub const EVALUATION_FILE: &str = "evaluation.json";

/// Test scores of one best model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The training step of the evaluated (best) model.
    pub best_step: usize,
    pub beam: usize,
    /// Teacher-forced test perplexity.
    pub test_ppl: f64,
    /// Teacher-forced perplexity over a fixed sample of the training pairs (`TRAIN_SAMPLE`):
    /// how well the model fits what it trained on, beside how it does on unseen text.
    /// None in evaluations written before it was measured (they are redone).
    #[serde(default)]
    pub train_ppl: Option<f64>,
    pub test_bleu: f64,
    pub test_chrf: f64,
}

/// The evaluation saved in the run folder `dir`, if any.
pub fn read_evaluation(dir: &Path) -> Option<Evaluation> {
    let text = std::fs::read_to_string(dir.join(EVALUATION_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_evaluation(dir: &Path, e: &Evaluation) -> Result<()> {
    let text = serde_json::to_string_pretty(e).map_err(|e| Error::Config(e.to_string()))?;
    atomic_file::write_text_atomic(&dir.join(EVALUATION_FILE), &text)
}

/// One row of the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthResult {
    pub layers: usize,
    pub parameters: usize,
    /// converged (early stopping), epoch cap, training, or not started.
    pub status: String,
    pub epochs: usize,
    /// Epochs and training seconds up to the best validation.
    pub best_epoch: Option<f64>,
    pub secs_to_best: Option<f64>,
    pub train_secs: f64,
    pub tokens_per_sec: f64,
    pub best_valid_ppl: Option<f64>,
    pub test: Option<Evaluation>,
    /// Validation perplexity after each epoch: (epoch, perplexity).
    pub valid_curve: Vec<(f64, f64)>,
}

/// Everything results.json holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub command: String,
    pub settings: Settings,
    pub nmt_version: String,
    pub threads: usize,
    /// SHA-256 of DIR/tokenizer.json: sittings of one sweep on different machines (each
    /// training its own tokenizer) are one sweep only where it is the same. None in files
    /// written before it was recorded.
    #[serde(default)]
    pub tokenizer_sha256: Option<String>,
    pub depths: Vec<DepthResult>,
}

/// Validation records of a run: (epoch, perplexity, is a new best, training seconds).
fn valid_records(dir: &Path) -> Vec<(f64, f64, bool, Option<f64>)> {
    let Ok(text) = std::fs::read_to_string(dir.join(METRICS_FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "valid")
        .filter_map(|v| {
            Some((
                v["epoch"].as_f64()?,
                v["valid_ppl"].as_f64()?,
                v["best"].as_bool().unwrap_or(false),
                v["train_secs"].as_f64(),
            ))
        })
        .collect()
}

/// The row of depth `layers`.
fn collect(spec: &DepthSpec, layers: usize) -> Result<DepthResult> {
    let s = &spec.settings;
    let dir = depth_dir(&spec.out, layers);
    let p = progress(&dir)?;
    let records = valid_records(&dir);
    let best = records.iter().rev().find(|r| r.2);
    let vocab = checkpoint::load_config(&dir).map_or(s.vocab_size, |c| c.tgt_vocab);
    let cfg = ModelConfig {
        layers,
        hidden: s.hidden,
        emb: s.emb,
        attention: s.attention,
        src_vocab: vocab,
        tgt_vocab: vocab,
        ..ModelConfig::default()
    };
    Ok(DepthResult {
        layers,
        parameters: params::param_count(&cfg),
        status: s.status(p.as_ref()).to_string(),
        epochs: p.map_or(0, |p| p.epochs),
        best_epoch: best.map(|r| r.0),
        secs_to_best: best.and_then(|r| r.3),
        train_secs: p.map_or(0.0, |p| p.train_secs),
        tokens_per_sec: p.map_or(0.0, |p| p.target_tokens as f64 / p.train_secs.max(1e-9)),
        best_valid_ppl: records.iter().map(|r| r.1).reduce(f64::min),
        test: read_evaluation(&dir).filter(|e| p.is_some_and(|p| p.best_step == e.best_step)),
        valid_curve: records.iter().map(|r| (r.0, r.1)).collect(),
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// The name a setting has in flags and files (e.g. `plateau`).
pub(super) fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// 7.2M, 46k, 950.
fn count(n: usize) -> String {
    match n {
        1_000_000.. => format!("{:.1}M", n as f64 / 1e6),
        1_000.. => format!("{:.0}k", n as f64 / 1e3),
        _ => n.to_string(),
    }
}

/// 42 s, 17 min, 2.3 h.
fn duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// The results as Markdown (results.md): a title over `tables`.
pub fn markdown(r: &Results) -> String {
    format!("# Depth sweep\n\n{}", tables(r))
}

/// The settings, then the main table, then validation perplexity per epoch.
pub fn tables(r: &Results) -> String {
    let s = &r.settings;
    let tc = &s.train;
    let mut md = String::new();
    md += &format!(
        "Equal settings for every depth: hidden {}, embedding {}, attention {}, joint BPE {} (trained once), {} lr {} ({} schedule), dropout {}, forget-gate bias {}, clip {}, batch {} tokens, seed {}; validation each epoch, stop after {} without improvement or at {} epochs; test translations with beam {}.\n\n",
        s.hidden, s.emb, s.attention.name(), s.vocab_size, name(&tc.optimizer), tc.lr, name(&tc.schedule), tc.dropout, tc.forget_bias,
        tc.clip_norm, tc.batch_tokens, tc.seed, tc.patience, tc.epochs, s.beam
    );
    md += &format!(
        "Command: `{}`  \n{} threads, {}\n\n",
        r.command, r.threads, r.nmt_version
    );
    md += "| layers | parameters | status | epochs | training time | best at epoch | time to best | tokens/s | train ppl | best valid ppl | test ppl | test ppl vs previous depth | BLEU | chrF2 |\n";
    md += "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let mut previous: Option<f64> = None;
    for d in &r.depths {
        let test_ppl = d.test.as_ref().map(|t| t.test_ppl);
        let change = match (previous, test_ppl) {
            (Some(a), Some(b)) => format!("{:+.1} %", 100.0 * (b - a) / a),
            _ => "-".into(),
        };
        previous = test_ppl;
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            d.layers,
            count(d.parameters),
            d.status,
            d.epochs,
            duration(d.train_secs),
            opt(d.best_epoch, 0),
            d.secs_to_best.map_or("-".into(), duration),
            d.tokens_per_sec,
            opt(d.test.as_ref().and_then(|t| t.train_ppl), 2),
            opt(d.best_valid_ppl, 2),
            opt(test_ppl, 2),
            change,
            opt(d.test.as_ref().map(|t| t.test_bleu), 2),
            opt(d.test.as_ref().map(|t| t.test_chrf), 2),
        );
    }
    md += &format!(
        "\nTraining time counts updates only (not validation or evaluation). Test scores, and the train perplexity (teacher forced over a fixed sample of {TRAIN_SAMPLE} training pairs: far below the test perplexity, the model overfits; both high, it underfits), are those of each depth's best checkpoint (lowest validation perplexity).\n\n"
    );
    md += "## Validation perplexity after each epoch\n\n| epoch |";
    for d in &r.depths {
        md += &format!(
            " {} layer{} |",
            d.layers,
            if d.layers == 1 { "" } else { "s" }
        );
    }
    md += "\n|---:|";
    md += &"---:|".repeat(r.depths.len());
    md += "\n";
    let epochs = r
        .depths
        .iter()
        .map(|d| d.valid_curve.len())
        .max()
        .unwrap_or(0);
    for e in 0..epochs {
        md += &format!("| {} |", e + 1);
        for d in &r.depths {
            md += &format!(" {} |", opt(d.valid_curve.get(e).map(|p| p.1), 2));
        }
        md += "\n";
    }
    md
}

/// Collects every depth and writes results.json and results.md.
pub fn write_all(spec: &DepthSpec) -> Result<Results> {
    let depths = spec
        .depths
        .iter()
        .map(|&d| collect(spec, d))
        .collect::<Result<Vec<_>>>()?;
    let r = Results {
        command: spec.command.clone(),
        settings: spec.settings.clone(),
        nmt_version: format!("nmt {}", env!("NMT_VERSION_INFO")),
        threads: rayon::current_num_threads(),
        tokenizer_sha256: sha256_file(&spec.out.join(TOKENIZER_FILE)).ok(),
        depths,
    };
    let json = serde_json::to_string_pretty(&r).map_err(|e| Error::Config(e.to_string()))?;
    atomic_file::write_text_atomic(&spec.out.join("results.json"), &json)?;
    atomic_file::write_text_atomic(&spec.out.join("results.md"), &markdown(&r))?;
    Ok(r)
}
