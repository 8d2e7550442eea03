//! The depth sweep: one training run per depth in DIR/depth-N, all with the same tokenizer
//! (trained once, joint over both sides), data order, seed, sizes, optimizer, schedule,
//! dropout and stopping rule. Depths advance one epoch at a time in turn, so a sweep cut
//! short still compares every depth at equal epochs; each depth resumes from its own
//! checkpoints and stops on its own (early stopping, or the epoch cap).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;

use super::depth_plot;
use super::results::{self, Evaluation, TRAIN_SAMPLE};
use super::sweep::{
    depth_dir, progress, DepthSpec, Settings, SweepEnd, HYP_FILE, SETTINGS_FILE, TOKENIZER_FILE,
};
use crate::atomic_file;
use crate::checkpoint;
use crate::config::{ModelConfig, SearchConfig, TrainConfig};
use crate::data::batch::encode_pairs;
use crate::data::corpus::read_parallel;
use crate::error::{Error, Result};
use crate::evaluation;
use crate::inference::{teacher_forced_nll, Translator};
use crate::metrics::perplexity;
use crate::model::precision::Precision;
use crate::tokenizer::SubwordTokenizer;
use crate::train::{self, StopReason, TrainSpec};

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
    atomic_file::write_text_atomic(&file, &text)
}

/// The sweep's joint tokenizer: DIR/tokenizer.json, trained on both training sides once.
fn tokenizer(spec: &DepthSpec) -> Result<PathBuf> {
    let path = spec.out.join(TOKENIZER_FILE);
    if !path.is_file() {
        let (src, tgt) = read_parallel(&spec.settings.files.train.0, &spec.settings.files.train.1)?;
        let tok = SubwordTokenizer::train(src.iter().chain(&tgt), spec.settings.vocab_size)?;
        atomic_file::write_atomic(&path, |tmp| tok.save(tmp))?;
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
            attention: s.attention,
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
        precision: Precision::F32,
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
            attention: s.attention,
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
                write_results(spec)?;
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
                write_results(spec)?;
                return Ok(SweepEnd::Interrupted);
            }
            // A finished call must have reached `target` epochs or stopped the depth.
            let after = progress(&depth_dir(&spec.out, d))?;
            if !after.is_some_and(|p| p.epochs >= target || s.stopped(&p)) {
                return Err(Error::Training(format!(
                    "depth {d} did not reach epoch {target} ({:?}); see {}",
                    summary.reason,
                    depth_dir(&spec.out, d)
                        .join(crate::run_log::LOG_FILE)
                        .display()
                )));
            }
        }
        report(spec, device, &say)?;
    }
    report(spec, device, &say)?;
    Ok(SweepEnd::Finished)
}

/// Evaluates the best model of every depth whose best checkpoint changed, then rewrites
/// the results files.
fn report(spec: &DepthSpec, device: &Device, say: &dyn Fn(String)) -> Result<()> {
    for &d in &spec.depths {
        let dir = depth_dir(&spec.out, d);
        let Some(p) = progress(&dir)? else { continue };
        if results::read_evaluation(&dir).is_some_and(|e| {
            e.best_step == p.best_step && e.beam == spec.settings.beam && e.train_ppl.is_some()
        }) {
            continue;
        }
        let e = evaluate(&dir, &spec.settings, p.best_step, device)?;
        say(format!(
            "depth {d}: best model (step {}) train perplexity {}, test perplexity {:.2}, BLEU {:.2}, chrF2 {:.2}",
            e.best_step,
            e.train_ppl.map_or("-".into(), |p| format!("{p:.2}")),
            e.test_ppl,
            e.test_bleu,
            e.test_chrf
        ));
        results::write_evaluation(&dir, &e)?;
    }
    write_results(spec)
}

/// Test perplexity (teacher forced), BLEU and chrF (beam search) of the model in `dir`.
fn evaluate(dir: &Path, s: &Settings, best_step: usize, device: &Device) -> Result<Evaluation> {
    let loaded = checkpoint::load(dir, device)?;
    let train_ppl = train_perplexity(&loaded, s, device)?;
    let (src, refs) = read_parallel(&s.files.test.0, &s.files.test.1)?;
    let search = SearchConfig {
        beam: s.beam,
        ..SearchConfig::default()
    };
    let t = Translator::new(vec![(dir.display().to_string(), loaded)], search)?;
    let scores = evaluation::evaluate(&t, &src, &refs, s.train.batch_tokens)?;
    let mut text = scores.hyps.join("\n");
    text.push('\n');
    atomic_file::write_text_atomic(&dir.join(HYP_FILE), &text)?;
    Ok(Evaluation {
        best_step,
        beam: s.beam,
        test_ppl: scores.perplexity,
        train_ppl: Some(train_ppl),
        test_bleu: scores.bleu.score,
        test_chrf: scores.chrf.score,
    })
}

/// Teacher-forced perplexity of `loaded` over every k-th training pair (k = ceil(pairs /
/// `TRAIN_SAMPLE`)): the same fixed sample for every depth, with the length limit training
/// applied.
fn train_perplexity(loaded: &checkpoint::Loaded, s: &Settings, device: &Device) -> Result<f64> {
    let (src, tgt) = read_parallel(&s.files.train.0, &s.files.train.1)?;
    let every = src.len().div_ceil(TRAIN_SAMPLE).max(1);
    let pick = |lines: Vec<String>| -> Vec<String> { lines.into_iter().step_by(every).collect() };
    let (src, tgt) = (pick(src), pick(tgt));
    let (examples, _) = encode_pairs(
        &src,
        &tgt,
        &loaded.src_tok,
        &loaded.tgt_tok,
        s.train.max_len,
    )?;
    let (nll, tokens) = teacher_forced_nll(&loaded.model, &examples, s.train.batch_tokens, device)?;
    Ok(perplexity(nll, tokens))
}

/// Collects every depth into results.json and results.md, and draws the plots.
fn write_results(spec: &DepthSpec) -> Result<()> {
    let r = results::write_all(spec)?;
    depth_plot::write_plots(&r, &spec.out)
}
