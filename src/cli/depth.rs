//! `nmt experiment depth`: the flags over the preset's defaults, the sweep, and its table.

use std::path::PathBuf;

use anyhow::Result;

use super::corpus::known_corpus;
use super::{interrupt_flag, CorpusArgs, DepthArgs};
use crate::config::TrainConfig;
use crate::device;
use crate::experiment::depth;
use crate::experiment::sweep::{DepthSpec, Preset, Settings, SweepEnd, SweepFiles};

/// The train, validation and test files of a depth sweep: all six file flags, else
/// --corpus, else the preset's data.
fn depth_files(a: &DepthArgs) -> Result<SweepFiles> {
    let given = [
        &a.src_file,
        &a.tgt_file,
        &a.valid_src_file,
        &a.valid_tgt_file,
        &a.test_src_file,
        &a.test_tgt_file,
    ];
    if given.iter().all(|f| f.is_some()) {
        let f = |i: usize| given[i].clone().unwrap_or_default();
        return Ok(SweepFiles {
            train: (f(0), f(1)),
            valid: (f(2), f(3)),
            test: (f(4), f(5)),
        });
    }
    if given.iter().any(|f| f.is_some()) {
        usage!("give all six of --src-file --tgt-file --valid-src-file --valid-tgt-file --test-src-file --test-tgt-file, or none of them (and --corpus or --preset for the data)");
    }
    let corpus = match (&a.corpus.corpus, a.preset) {
        (Some(_), _) => a.corpus.clone(),
        (None, Preset::Multi30k) => CorpusArgs {
            corpus: Some("multi30k".into()),
            pair: a.corpus.pair.clone(),
        },
        (None, Preset::Smoke) => {
            let f = |n: &str| PathBuf::from("corpora/toy").join(n);
            if !f("train.de").is_file() {
                usage!("--preset smoke trains on corpora/toy/, which is not in {}: run it from the nmt repository, or give the six file flags", std::env::current_dir().unwrap_or_default().display());
            }
            return Ok(SweepFiles {
                train: (f("train.de"), f("train.en")),
                valid: (f("valid.de"), f("valid.en")),
                test: (f("test.de"), f("test.en")),
            });
        }
    };
    let Some((m, s, t)) = known_corpus(&corpus)? else {
        usage!("give --corpus multi30k|europarl or the six file flags");
    };
    let pair = (s.as_str(), t.as_str());
    Ok(SweepFiles {
        train: m.train(pair),
        valid: m.valid(pair),
        test: m.test(pair),
    })
}

pub fn run(a: DepthArgs) -> Result<()> {
    let dev = device::pick(&a.device)?;
    let p = a.preset.values();
    // Another optimizer brings its own usual rate and schedule unless they are given.
    let (lr, schedule) = match a.optimizer {
        Some(o) if o != p.train.optimizer => (o.default_lr(), o.default_schedule(true)),
        _ => (p.train.lr, p.train.schedule),
    };
    let train = TrainConfig {
        optimizer: a.optimizer.unwrap_or(p.train.optimizer),
        lr: a.lr.unwrap_or(lr),
        schedule: a.schedule.unwrap_or(schedule),
        plateau_patience: a.plateau_patience.unwrap_or(p.train.plateau_patience),
        dropout: a.dropout.map_or(p.train.dropout, |d| d as f32),
        forget_bias: a.forget_bias.map_or(p.train.forget_bias, |f| f as f32),
        clip_norm: a.clip_norm.unwrap_or(p.train.clip_norm),
        batch_tokens: a.batch_tokens.unwrap_or(p.train.batch_tokens),
        patience: a.patience.unwrap_or(p.train.patience),
        epochs: a.max_epochs.unwrap_or(p.train.epochs),
        seed: a.seed.unwrap_or(p.train.seed),
        ..p.train
    };
    if train.epochs == 0 {
        usage!("--max-epochs must be at least 1");
    }
    let settings = Settings {
        preset: a.preset.name().into(),
        files: depth_files(&a)?,
        vocab_size: a.vocab_size.unwrap_or(p.vocab_size),
        emb: a.emb.unwrap_or(p.emb),
        hidden: a.hidden.unwrap_or(p.hidden),
        attention: a.attention.unwrap_or_default(),
        train,
        beam: a.beam.unwrap_or(p.beam),
    };
    if settings.beam == 0 {
        usage!("--beam must be at least 1");
    }
    let spec = DepthSpec {
        settings,
        depths: a.layers.clone().unwrap_or(p.depths),
        out: a.out.clone(),
        progress: !a.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let interrupt = interrupt_flag();
    let end = depth::run(&spec, &dev, &interrupt)?;
    let md = std::fs::read_to_string(a.out.join("results.md")).unwrap_or_default();
    let table: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with('|'))
        .take(2 + spec.depths.len())
        .collect();
    println!("{}", table.join("\n"));
    match end {
        SweepEnd::Finished => println!(
            "every depth has stopped; results in {}/results.md",
            a.out.display()
        ),
        SweepEnd::Interrupted => {
            println!(
                "interrupted: progress saved in {}; run the same command again to continue",
                a.out.display()
            );
            std::process::exit(130);
        }
    }
    Ok(())
}
