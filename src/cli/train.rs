//! `nmt train`: the flags and their defaults made into a `TrainSpec`, the run, and its summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::corpus::known_corpus;
use super::{interrupt_flag, LogFormat, TrainArgs};
use crate::config::{ModelConfig, TrainConfig};
use crate::device;
use crate::hub::{self, ModelRef};
use crate::train::{self, StopReason, TrainSpec};

pub fn run(a: TrainArgs) -> Result<()> {
    if a.print_config {
        println!(
            "# nmt train options with their defaults. Also: src_file, tgt_file, valid_src_file,"
        );
        println!(
            "# valid_tgt_file, corpus, out, tokenizer, lr (0.7 sgd / 0.002 adam) and schedule"
        );
        println!(
            "# (paper for sgd, constant for adam). Flags on the command line override this file."
        );
        print!("{}", toml::to_string(&a).context("printing the options")?);
        return Ok(());
    }
    let Some(out) = a.out.clone() else {
        usage!("give --out DIR, the run folder");
    };
    let dev = device::pick(&a.device)?;
    // Explicit files win; the corpus lookup (and any download) runs only without them.
    let (src_file, tgt_file, mut valid) = match (&a.src_file, &a.tgt_file) {
        (Some(s), Some(t)) => (s.clone(), t.clone(), None),
        _ => match known_corpus(&a.corpus)? {
            Some((m, s, t)) => {
                let (src, tgt) = m.train((&s, &t));
                (src, tgt, Some(m.valid((&s, &t))))
            }
            None => {
                usage!("give --src-file and --tgt-file, or --corpus multi30k|europarl (or --resume a run)")
            }
        },
    };
    match (&a.valid_src_file, &a.valid_tgt_file) {
        (Some(s), Some(t)) => valid = Some((s.clone(), t.clone())),
        (None, None) => {}
        _ => usage!("give both --valid-src-file and --valid-tgt-file, or neither"),
    }
    let lr = a.lr.unwrap_or(a.optimizer.default_lr());
    let schedule = a.schedule.unwrap_or(a.optimizer.default_schedule(false));
    let interactive = std::io::stderr().is_terminal();
    let spec = TrainSpec {
        src_file,
        tgt_file,
        valid,
        out: out.clone(),
        model: ModelConfig {
            layers: a.layers,
            hidden: a.hidden,
            emb: a.emb,
            attention: a.attention,
            src_vocab: a.vocab_size,
            tgt_vocab: a.vocab_size,
            ..ModelConfig::default()
        },
        train: TrainConfig {
            epochs: a.epochs,
            max_steps: a.max_steps,
            batch_tokens: a.batch_tokens,
            optimizer: a.optimizer,
            lr,
            schedule,
            warmup_steps: a.warmup_steps,
            plateau_patience: a.plateau_patience,
            clip_norm: a.clip_norm,
            seed: a.seed,
            max_len: a.max_len,
            dropout: a.dropout as f32,
            forget_bias: a.forget_bias as f32,
            label_smoothing: a.label_smoothing,
            valid_every: a.valid_every,
            valid_bleu: a.valid_bleu,
            valid_beam: a.valid_beam,
            save_every: a.save_every,
            keep_last: a.keep_last,
            patience: a.patience,
            metric: a.metric,
            max_bad_steps: a.max_bad_steps,
            log_every: a.log_every,
        },
        vocab_size: a.vocab_size,
        tokenizer: match &a.tokenizer {
            None => None,
            Some(t) if Path::new(t).exists() => Some(PathBuf::from(t)),
            Some(t) => {
                let r = ModelRef::parse(t);
                let dir = hub::resolve_files(&r, &["tokenizer.json"], hub::offline_from_env())?;
                Some(if matches!(r, ModelRef::Hub { .. }) {
                    dir.join("tokenizer.json")
                } else {
                    PathBuf::from(t)
                })
            }
        },
        overwrite: a.overwrite,
        resume: a.resume,
        progress: !a.quiet && a.log_format == LogFormat::Text && interactive,
        log_json: a.log_format == LogFormat::Json,
        config_toml: toml::to_string(&a).context("writing the effective options")?,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        precision: a.precision,
    };
    spec.model.validate()?;
    let interrupt = interrupt_flag();
    let started = Instant::now();
    let s = train::run(&spec, &dev, &interrupt)?;
    let say = |line: String| {
        if a.log_format == LogFormat::Text {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    say(format!(
        "trained {} steps ({} epochs) on {} pairs ({} skipped) in {:.0} s: {:.0} target tokens/s, last loss {:.3}{}{}",
        s.steps,
        s.epochs_done,
        s.train_pairs,
        s.skipped_pairs,
        started.elapsed().as_secs_f64(),
        s.tokens_per_sec,
        s.last_loss,
        s.valid_ppl.map(|p| format!(", validation perplexity {p:.2}")).unwrap_or_default(),
        if s.skipped_updates > 0 { format!(", {} updates skipped (non-finite)", s.skipped_updates) } else { String::new() }
    ));
    match s.reason {
        StopReason::Interrupted => {
            say(format!(
                "interrupted: checkpoint saved in {}; continue with `nmt train --out {} --resume`",
                out.display(),
                out.display()
            ));
            std::process::exit(130);
        }
        StopReason::EarlyStopped => say(format!(
            "stopped early: no better validation {:?} for {} validations",
            a.metric, a.patience
        )),
        StopReason::MaxSteps | StopReason::Completed => {}
    }
    say(format!("model saved in {}", out.display()));
    Ok(())
}
