//! The `nmt` binary: parse the command line, dispatch, and print for humans.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

use nmt::checkpoint;
use nmt::cli::{
    Cli, Command, CorpusArgs, CorpusCommand, EvalArgs, OutputFormat, ScoreArgs, SearchArgs,
    TrainArgs, TranslateArgs,
};
use nmt::config::{ModelConfig, OptimizerKind, SearchConfig, TrainConfig};
use nmt::data::corpus::{read_lines, read_parallel};
use nmt::data::multi30k::{self, Multi30k};
use nmt::device;
use nmt::inference::{sentence_nll, teacher_forced_nll, Translation, Translator};
use nmt::metrics::{perplexity, Bleu, Chrf};
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
        Command::Score(a) => cmd_score(a),
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

fn translator(models: &[PathBuf], s: &SearchArgs, n_best: usize) -> Result<Translator> {
    device::set_threads(s.threads);
    let dev = device::pick(&s.device)?;
    let loaded = models
        .iter()
        .map(|m| Ok((m.display().to_string(), checkpoint::load(m, &dev)?)))
        .collect::<Result<Vec<_>>>()?;
    let search = SearchConfig {
        beam: s.beam,
        n_best,
        max_len_ratio: s.max_len_ratio,
        min_len: s.min_len,
        length_penalty: s.length_penalty,
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

/// Renders the n-best lists of sentences numbered from `first_id`.
fn render(all: &[Vec<Translation>], format: OutputFormat, first_id: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, hyps) in all.iter().enumerate() {
        for (rank, h) in hyps.iter().enumerate() {
            out.push(match format {
                OutputFormat::Plain => h.text.clone(),
                OutputFormat::Tsv => {
                    format!("{}\t{}\t{:.4}\t{}", first_id + i, rank + 1, h.score, h.text)
                }
                OutputFormat::Jsonl => serde_json::json!({
                    "id": first_id + i,
                    "rank": rank + 1,
                    "score": h.score,
                    "log_prob": h.log_prob,
                    "text": h.text,
                })
                .to_string(),
            });
        }
    }
    out
}

/// Prompts on stderr and translates each line as it is entered, until EOF.
fn interactive(t: &Translator, format: OutputFormat) -> Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    eprintln!("nmt: type a sentence and press Enter; Ctrl-D ends.");
    let mut id = 1;
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
            eprintln!();
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']).to_string();
        for out in render(&t.translate_nbest(&[line])?, format, id) {
            writeln!(stdout, "{out}")?;
        }
        stdout.flush()?;
        id += 1;
    }
}

fn cmd_translate(a: TranslateArgs) -> Result<()> {
    if let Some(out) = &a.output {
        check_output(out, a.overwrite, "--output")?;
    }
    let t = translator(&a.model, &a.search, a.n_best)?;
    let lines: Vec<String> = if !a.text.is_empty() {
        a.text.clone()
    } else if let Some(input) = &a.input {
        read_lines(input)?
    } else if std::io::stdin().is_terminal() && a.output.is_none() {
        return interactive(&t, a.format);
    } else {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading sentences from stdin")?
    };
    let out = render(&t.translate_nbest(&lines)?, a.format, 1);
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

/// Source and reference files of `eval` with a model.
fn eval_files(a: &EvalArgs) -> Result<(PathBuf, PathBuf)> {
    match (known_corpus(&a.corpus)?, &a.src_file, &a.ref_file) {
        (_, Some(s), Some(r)) => Ok((s.clone(), r.clone())),
        (Some((m, s, t)), None, None) => {
            if !multi30k::SPLITS.contains(&a.split.as_str()) {
                bail!(
                    "unknown split `{}`: use one of {}",
                    a.split,
                    multi30k::SPLITS.join(", ")
                );
            }
            Ok((m.file(&a.split, &s), m.file(&a.split, &t)))
        }
        _ => bail!("give --src-file and --ref-file, or --corpus multi30k"),
    }
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    if let Some(out) = &a.hyp_output {
        check_output(out, a.overwrite, "--hyp-output")?;
    }
    let mut report = serde_json::Map::new();
    let (hyps, refs) = if let Some(hyp_file) = &a.hyp_file {
        let ref_file = a.ref_file.as_ref().context("--hyp-file needs --ref-file")?;
        read_parallel(hyp_file, ref_file)?
    } else {
        let (src_file, ref_file) = eval_files(&a)?;
        let (src, refs) = read_parallel(&src_file, &ref_file)?;
        let t = translator(&a.model, &a.search, 1)?;
        let started = Instant::now();
        let best: Vec<Translation> = t
            .translate_nbest(&src)?
            .into_iter()
            .map(|mut h| h.swap_remove(0))
            .collect();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let out_tokens: usize = best.iter().map(|h| h.tokens).sum();
        let hyps: Vec<String> = best.into_iter().map(|h| h.text).collect();
        let (examples, _) = encode_pairs(&src, &refs, t.src_tok(), &t.tgt_tok, usize::MAX)?;
        let (nll, tokens) = teacher_forced_nll(t.model(), &examples, 4000, t.model().device())?;
        if let Some(out) = &a.hyp_output {
            write_lines(out, &hyps)?;
        }
        for i in 0..a.show.min(src.len()) {
            if !a.json {
                println!(
                    "source:      {}\ntranslation: {}\nreference:   {}\n",
                    src[i], hyps[i], refs[i]
                );
            }
        }
        report.insert("perplexity".into(), perplexity(nll, tokens).into());
        report.insert("perplexity_tokens".into(), tokens.into());
        report.insert(
            "models".into(),
            a.model
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .into(),
        );
        report.insert("beam".into(), a.search.beam.into());
        report.insert("sentences_per_sec".into(), (src.len() as f64 / secs).into());
        report.insert("tokens_per_sec".into(), (out_tokens as f64 / secs).into());
        (hyps, refs)
    };
    let bleu = Bleu::corpus(&hyps, &refs);
    let chrf = Chrf::corpus(&hyps, &refs);
    report.insert("sentences".into(), hyps.len().into());
    report.insert("bleu".into(), bleu.score.into());
    report.insert("bleu_verbose".into(), bleu.format().into());
    report.insert("bleu_signature".into(), Bleu::SIGNATURE.into());
    report.insert("chrf".into(), chrf.score.into());
    report.insert("chrf_signature".into(), Chrf::SIGNATURE.into());
    if a.json {
        println!("{}", serde_json::Value::Object(report));
        return Ok(());
    }
    println!("{}", bleu.format());
    println!("{}", Bleu::SIGNATURE);
    println!("{}", chrf.format());
    println!("{}", Chrf::SIGNATURE);
    if let Some(p) = report.get("perplexity") {
        println!(
            "perplexity = {:.2} ({} target tokens, teacher-forced{})",
            p.as_f64().unwrap_or(f64::NAN),
            report["perplexity_tokens"],
            if a.model.len() > 1 {
                ", first model"
            } else {
                ""
            }
        );
        println!(
            "decoded {} sentences: {:.1} sentences/s, {:.0} tokens/s (beam {})",
            hyps.len(),
            report["sentences_per_sec"].as_f64().unwrap_or(0.0),
            report["tokens_per_sec"].as_f64().unwrap_or(0.0),
            a.search.beam
        );
    }
    Ok(())
}

fn cmd_score(a: ScoreArgs) -> Result<()> {
    device::set_threads(a.threads);
    let dev = device::pick(&a.device)?;
    let loaded = checkpoint::load(&a.model, &dev)?;
    let (src, tgt) = read_parallel(&a.src_file, &a.tgt_file)?;
    let examples = src
        .iter()
        .zip(&tgt)
        .map(|(s, t)| {
            Ok(nmt::data::batch::Example {
                src: loaded.src_tok.encode(s.trim())?,
                tgt: loaded.tgt_tok.encode(t.trim())?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let nll = sentence_nll(&loaded.model, &examples, 4000, &dev)?;
    let mut stdout = std::io::stdout().lock();
    let (mut total, mut tokens) = (0f64, 0usize);
    for (i, (v, e)) in nll.iter().zip(&examples).enumerate() {
        let n = e.tgt.len() + 1;
        writeln!(
            stdout,
            "{}\t{:.4}\t{}\t{:.4}",
            i + 1,
            -v,
            n,
            perplexity(*v, n)
        )?;
        total += v;
        tokens += n;
    }
    writeln!(
        stdout,
        "total\t{:.4}\t{}\t{:.4}",
        -total,
        tokens,
        perplexity(total, tokens)
    )?;
    Ok(())
}
