//! The `nmt` binary: parse the command line, dispatch, and print for humans.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};

use nmt::cli::{
    Cli, Command, CorpusArgs, CorpusCommand, DepthArgs, EvalArgs, ExperimentCommand, LogFormat,
    OutputFormat, PlotArgs, ScoreArgs, SearchArgs, TrainArgs, TranslateArgs,
};
use nmt::config::{ModelConfig, OptimizerKind, Schedule, SearchConfig, TrainConfig};
use nmt::data::corpus::{read_lines, read_parallel};
use nmt::data::multi30k::{self, Multi30k};
use nmt::device;
use nmt::experiment::depth::{self, DepthSpec, Preset, Settings, SweepEnd, SweepFiles};
use nmt::hub::{self, ModelRef};
use nmt::inference::{sentence_nll, teacher_forced_nll, Translation, Translator};
use nmt::metrics::{perplexity, Bleu, Chrf};
use nmt::train::{self, encode_pairs, StopReason, TrainSpec};
use nmt::{card, checkpoint};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's option setter (the allocator above links it).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (15 in v2 and in v3, which is linked).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps freed memory for reuse instead of handing it back to the OS: training and search
/// free and allocate buffers of the same sizes every step, and memory handed back comes
/// back as fresh pages the kernel has to clear (page faults fell from ~1,000 to ~10 per
/// training step; 2-8 % faster).
fn keep_freed_memory() {
    // SAFETY: plain option setter, called before any other thread exists.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// The download cache of known corpora, relative to the working directory.
const CORPUS_CACHE: &str = "corpora/multi30k";

fn main() -> ExitCode {
    keep_freed_memory();
    let args = match expand_train_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    if let Some(n) = cli.command.threads() {
        device::set_threads(n);
    }
    // The command runs on a thread of the rayon pool: the kernels fork and join thousands of
    // times a training step, ~18 us each from a thread outside the pool (the work is injected
    // and a sleeping worker woken), ~1 us from inside (4-layer bench step 284-298 -> 268-271 ms).
    let result = rayon::scope(|_| run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => cmd_train(a),
        Command::Translate(a) => cmd_translate(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Score(a) => cmd_score(a),
        Command::Plot(a) => cmd_plot(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Info(a) => model_dir(&a.model, a.offline).and_then(|d| {
            print!("{}", card::summarize(&d)?.describe());
            Ok(())
        }),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "nmt", &mut std::io::stdout());
            Ok(())
        }
        Command::Corpus(CorpusCommand::Fetch { name, dir }) => cmd_fetch(&name, &dir),
        Command::Experiment(ExperimentCommand::Depth(a)) => cmd_depth(a),
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

/// `nmt train` options from TOML, as command-line flags placed before the user's own (which
/// therefore win): first the resumed run's saved options, then `--config FILE`.
fn expand_train_config(mut args: Vec<OsString>) -> Result<Vec<OsString>> {
    if args.get(1).and_then(|a| a.to_str()) != Some("train") {
        return Ok(args);
    }
    let value_of = |flag: &str| -> Option<PathBuf> {
        let mut it = args.iter().skip(2).filter_map(|a| a.to_str());
        while let Some(a) = it.next() {
            if a == flag {
                return it.next().map(PathBuf::from);
            }
            if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                return Some(PathBuf::from(v));
            }
        }
        None
    };
    let mut files = Vec::new();
    if args.iter().any(|a| a == "--resume") {
        if let Some(out) = value_of("--out") {
            let saved = out.join("train_config.toml");
            if saved.is_file() {
                files.push(saved);
            }
        }
    }
    files.extend(value_of("--config"));
    let mut injected = Vec::new();
    for file in files {
        injected.extend(toml_to_flags(&file)?);
    }
    args.splice(2..2, injected);
    Ok(args)
}

/// The flags a TOML options file stands for, checked against `nmt train`'s own flags.
fn toml_to_flags(file: &Path) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read config file {}", file.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", file.display()))?;
    let cmd = Cli::command();
    let train = cmd.find_subcommand("train").context("train subcommand")?;
    let known: Vec<String> = train
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if !known.contains(&flag)
            || ["config", "print-config", "resume", "overwrite"].contains(&flag.as_str())
        {
            bail!(
                "{}: unknown option `{key}`; `nmt train --print-config` lists the options",
                file.display()
            );
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(true) => {
                flags.push(OsString::from(format!("--{flag}")));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            other => bail!(
                "{}: option `{key}` must be a string, number or boolean, not {}",
                file.display(),
                other.type_str()
            ),
        };
        flags.push(OsString::from(format!("--{flag}")));
        flags.push(OsString::from(text));
    }
    Ok(flags)
}

fn cmd_train(a: TrainArgs) -> Result<()> {
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
        bail!("give --out DIR, the run folder");
    };
    let dev = device::pick(&a.device)?;
    // Explicit files win; the corpus lookup (and any download) runs only without them.
    let (src_file, tgt_file, mut valid) = match (&a.src_file, &a.tgt_file) {
        (Some(s), Some(t)) => (s.clone(), t.clone(), None),
        _ => match known_corpus(&a.corpus)? {
            Some((m, s, t)) => (
                m.file("train", &s),
                m.file("train", &t),
                Some((m.file("val", &s), m.file("val", &t))),
            ),
            None => {
                bail!("give --src-file and --tgt-file, or --corpus multi30k (or --resume a run)")
            }
        },
    };
    match (&a.valid_src_file, &a.valid_tgt_file) {
        (Some(s), Some(t)) => valid = Some((s.clone(), t.clone())),
        (None, None) => {}
        _ => bail!("give both --valid-src-file and --valid-tgt-file, or neither"),
    }
    let lr = a.lr.unwrap_or(match a.optimizer {
        OptimizerKind::Sgd => 0.7,
        OptimizerKind::Adam => 0.002,
    });
    let schedule = a.schedule.unwrap_or(match a.optimizer {
        OptimizerKind::Sgd => Schedule::Paper,
        OptimizerKind::Adam => Schedule::Constant,
    });
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

/// A flag raised by the first Ctrl-C (training stops at the next update with a
/// checkpoint); a second Ctrl-C quits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nnmt: interrupted; saving a checkpoint at the end of this update (Ctrl-C again to quit now)");
    });
    interrupt
}

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
        bail!("give all six of --src-file --tgt-file --valid-src-file --valid-tgt-file --test-src-file --test-tgt-file, or none of them (and --corpus or --preset for the data)");
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
                bail!("--preset smoke trains on corpora/toy/, which is not in {}: run it from the nmt repository, or give the six file flags", std::env::current_dir().unwrap_or_default().display());
            }
            return Ok(SweepFiles {
                train: (f("train.de"), f("train.en")),
                valid: (f("valid.de"), f("valid.en")),
                test: (f("test.de"), f("test.en")),
            });
        }
    };
    let Some((m, s, t)) = known_corpus(&corpus)? else {
        bail!("give --corpus multi30k or the six file flags");
    };
    Ok(SweepFiles {
        train: (m.file("train", &s), m.file("train", &t)),
        valid: (m.file("val", &s), m.file("val", &t)),
        test: (
            m.file("test_2016_flickr", &s),
            m.file("test_2016_flickr", &t),
        ),
    })
}

fn cmd_depth(a: DepthArgs) -> Result<()> {
    let dev = device::pick(&a.device)?;
    let p = a.preset.values();
    // Another optimizer brings its own usual rate and schedule unless they are given.
    let (lr, schedule) = match a.optimizer {
        Some(o) if o != p.train.optimizer => match o {
            OptimizerKind::Sgd => (0.7, Schedule::Paper),
            OptimizerKind::Adam => (0.002, Schedule::Plateau),
        },
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
        bail!("--max-epochs must be at least 1");
    }
    let settings = Settings {
        preset: a.preset.name().into(),
        files: depth_files(&a)?,
        vocab_size: a.vocab_size.unwrap_or(p.vocab_size),
        emb: a.emb.unwrap_or(p.emb),
        hidden: a.hidden.unwrap_or(p.hidden),
        train,
        beam: a.beam.unwrap_or(p.beam),
    };
    if settings.beam == 0 {
        bail!("--beam must be at least 1");
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

/// The local folder of a `--model` value (downloading a Hub model on a cache miss).
fn model_dir(model: &str, offline: bool) -> Result<PathBuf> {
    Ok(hub::resolve(
        &ModelRef::parse(model),
        offline || hub::offline_from_env(),
    )?)
}

fn translator(models: &[String], s: &SearchArgs, n_best: usize) -> Result<Translator> {
    let dev = device::pick(&s.device)?;
    let loaded = models
        .iter()
        .map(|m| {
            Ok((
                m.clone(),
                checkpoint::load(&model_dir(m, s.offline)?, &dev)?,
            ))
        })
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
    if let (Some(s), Some(r)) = (&a.src_file, &a.ref_file) {
        return Ok((s.clone(), r.clone()));
    }
    if a.corpus.corpus.is_some() && !multi30k::SPLITS.contains(&a.split.as_str()) {
        bail!(
            "unknown split `{}`: use one of {}",
            a.split,
            multi30k::SPLITS.join(", ")
        );
    }
    match (known_corpus(&a.corpus)?, &a.src_file, &a.ref_file) {
        (Some((m, s, t)), None, None) => Ok((m.file(&a.split, &s), m.file(&a.split, &t))),
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
        report.insert("models".into(), a.model.clone().into());
        report.insert("ref_file".into(), ref_file.display().to_string().into());
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
    // A local single model remembers its evaluations (model card and `nmt info`).
    if let [m] = a.model.as_slice() {
        if ModelRef::parse(m) == ModelRef::Dir(PathBuf::from(m.as_str())) {
            let mut rec = report.clone();
            rec.remove("perplexity_tokens");
            card::record_evaluation(Path::new(m), &serde_json::Value::Object(rec))?;
        }
    }
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
    let dev = device::pick(&a.device)?;
    let loaded = checkpoint::load(&model_dir(&a.model, a.offline)?, &dev)?;
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

fn cmd_plot(a: PlotArgs) -> Result<()> {
    let out = match &a.out {
        Some(p) => {
            check_output(p, a.overwrite, "--out")?;
            p.clone()
        }
        None => a.dir.join("plot.svg"),
    };
    nmt::plot::plot_run(&a.dir, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn cmd_bench(a: nmt::bench::BenchArgs) -> Result<()> {
    let (line, record) = nmt::bench::run(&a)?;
    println!("{line}");
    if let Some(path) = &a.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(f, "{record}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
