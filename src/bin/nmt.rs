//! The `nmt` binary: parse the command line, dispatch, and print for humans.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

use nmt::checkpoint;
use nmt::cli::{
    Cli, Command, CorpusArgs, CorpusCommand, EvalArgs, SearchArgs, TrainArgs, TranslateArgs,
};
use nmt::config::{ModelConfig, OptimizerKind, SearchConfig, TrainConfig};
use nmt::data::corpus::{read_lines, read_parallel};
use nmt::data::multi30k::{self, Multi30k};
use nmt::device;
use nmt::inference::{teacher_forced_nll, Translator};
use nmt::metrics::{perplexity, Bleu};
use nmt::train::{self, encode_pairs, TrainSpec};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The download cache of known corpora, relative to the working directory.
const CORPUS_CACHE: &str = "corpora/multi30k";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Translate(a) => cmd_translate(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Corpus(CorpusCommand::Fetch { name, dir }) => cmd_fetch(&name, &dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The Multi30k files for `--corpus multi30k --pair SRC-TGT`.
fn known_corpus(c: &CorpusArgs) -> Result<Option<(Multi30k, String, String)>> {
    let Some(name) = &c.corpus else {
        return Ok(None);
    };
    if name != "multi30k" {
        bail!(
            "unknown corpus `{name}`: the known corpus is multi30k (or give --src-file/--tgt-file)"
        );
    }
    let (s, t) = Multi30k::pair(&c.pair)?;
    Ok(Some((multi30k::locate(Path::new(CORPUS_CACHE))?, s, t)))
}

fn cmd_fetch(name: &str, dir: &Path) -> Result<()> {
    if name != "multi30k" {
        bail!("unknown corpus `{name}`: the known corpus is multi30k");
    }
    let m = if std::env::var_os("NMT_CORPORA").is_some() {
        multi30k::locate(dir)?
    } else {
        multi30k::fetch(dir)?
    };
    println!("multi30k is in {}", m.dir.display());
    Ok(())
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::pick(&a.device)?;
    let known = known_corpus(&a.corpus)?;
    let (src_file, tgt_file, mut valid) = match (&known, &a.src_file, &a.tgt_file) {
        (_, Some(s), Some(t)) => (s.clone(), t.clone(), None),
        (Some((m, s, t)), _, _) => (
            m.file("train", s),
            m.file("train", t),
            Some((m.file("val", s), m.file("val", t))),
        ),
        _ => bail!("give --src-file and --tgt-file, or --corpus multi30k"),
    };
    if let (Some(s), Some(t)) = (&a.valid_src_file, &a.valid_tgt_file) {
        valid = Some((s.clone(), t.clone()));
    }
    let lr = a.lr.unwrap_or(match a.optimizer {
        OptimizerKind::Sgd => 0.7,
        OptimizerKind::Adam => 0.002,
    });
    let spec = TrainSpec {
        src_file,
        tgt_file,
        valid,
        out: a.out.clone(),
        model: ModelConfig {
            layers: a.layers,
            hidden: a.hidden,
            emb: a.emb,
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
            clip_norm: a.clip_norm,
            seed: a.seed,
            max_len: a.max_len,
        },
        vocab_size: a.vocab_size,
        tokenizer: a.tokenizer.clone(),
        overwrite: a.overwrite,
        progress: !a.quiet && std::io::stderr().is_terminal(),
    };
    spec.model.validate()?;
    let started = Instant::now();
    let s = train::run(&spec, &dev)?;
    println!(
        "trained {} steps ({} epochs) on {} pairs ({} skipped) in {:.0} s: {:.0} target tokens/s, last loss {:.3}{}",
        s.steps,
        s.epochs_done,
        s.train_pairs,
        s.skipped_pairs,
        started.elapsed().as_secs_f64(),
        s.tokens_per_sec,
        s.last_loss,
        s.valid_ppl.map(|p| format!(", validation perplexity {p:.2}")).unwrap_or_default()
    );
    println!("model saved in {}", a.out.display());
    Ok(())
}

fn translator(model: &Path, s: &SearchArgs) -> Result<Translator> {
    device::set_threads(s.threads);
    let dev = device::pick(&s.device)?;
    let loaded = checkpoint::load(model, &dev)?;
    let search = SearchConfig {
        beam: s.beam,
        max_len_ratio: s.max_len_ratio,
        length_alpha: s.length_alpha,
        batch_size: s.batch_size,
    };
    Ok(Translator::new(loaded, search)?)
}

/// Refuses to replace an existing file unless asked to.
fn check_output(path: &Path, overwrite: bool, flag: &str) -> Result<()> {
    if path.exists() && !overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace it, or choose another {flag}",
            path.display()
        );
    }
    Ok(())
}

fn write_lines(path: &Path, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    checkpoint::write_text_atomic(path, &text)?;
    Ok(())
}

fn cmd_translate(a: TranslateArgs) -> Result<()> {
    if let Some(out) = &a.output {
        check_output(out, a.overwrite, "--output")?;
    }
    let t = translator(&a.model, &a.search)?;
    let lines: Vec<String> = if !a.text.is_empty() {
        a.text.clone()
    } else if let Some(input) = &a.input {
        read_lines(input)?
    } else {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading sentences from stdin")?
    };
    let out = t.translate(&lines)?;
    match &a.output {
        Some(path) => write_lines(path, &out)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            for line in &out {
                writeln!(stdout, "{line}")?;
            }
        }
    }
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    if let Some(out) = &a.hyp_output {
        check_output(out, a.overwrite, "--hyp-output")?;
    }
    let (src_file, ref_file): (PathBuf, PathBuf) =
        match (known_corpus(&a.corpus)?, &a.src_file, &a.ref_file) {
            (_, Some(s), Some(r)) => (s.clone(), r.clone()),
            (Some((m, s, t)), _, _) => {
                if !multi30k::SPLITS.contains(&a.split.as_str()) {
                    bail!(
                        "unknown split `{}`: use one of {}",
                        a.split,
                        multi30k::SPLITS.join(", ")
                    );
                }
                (m.file(&a.split, &s), m.file(&a.split, &t))
            }
            _ => bail!("give --src-file and --ref-file, or --corpus multi30k"),
        };
    let (src, refs) = read_parallel(&src_file, &ref_file)?;
    let t = translator(&a.model, &a.search)?;
    let started = Instant::now();
    let hyps = t.translate(&src)?;
    let secs = started.elapsed().as_secs_f64();
    let bleu = Bleu::corpus(&hyps, &refs);
    let (examples, _) = encode_pairs(&src, &refs, &t.src_tok, &t.tgt_tok, usize::MAX)?;
    let (nll, tokens) = teacher_forced_nll(&t.model, &examples, 4000, t.model.device())?;
    if let Some(out) = &a.hyp_output {
        write_lines(out, &hyps)?;
    }
    for i in 0..a.show.min(src.len()) {
        println!(
            "source:      {}\ntranslation: {}\nreference:   {}\n",
            src[i], hyps[i], refs[i]
        );
    }
    println!("{}", bleu.format());
    println!("{}", Bleu::SIGNATURE);
    println!(
        "perplexity = {:.2} ({} target tokens, teacher-forced)",
        perplexity(nll, tokens),
        tokens
    );
    println!(
        "decoded {} sentences in {:.1} s ({:.1} sentences/s, beam {})",
        src.len(),
        secs,
        src.len() as f64 / secs.max(1e-9),
        a.search.beam
    );
    Ok(())
}
