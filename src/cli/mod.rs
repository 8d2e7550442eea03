//! The command line: its flags (clap derive) and what each command does with them. The
//! binary (`src/bin/nmt.rs`) only parses and dispatches here. This is the one module that
//! prints for humans, and like the binary it reports errors with `anyhow` (a message chain),
//! where the layers below return `nmt::Error`.

/// Returns a usage error (exit status 2: a flag missing, conflicting or out of range) with a
/// `format!` message.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Usage(format!($($arg)*)).into())
    };
}

pub mod compare;
pub mod config_file;
pub mod corpus;
pub mod depth;
mod depth_args;
pub mod eval;
pub mod loading;
pub mod output;
pub mod score;
mod search_args;
pub mod serve;
pub mod train;
mod train_args;
pub mod translate;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};

pub use depth_args::DepthArgs;
pub use search_args::{
    EvalArgs, InfoArgs, OutputFormat, PlotArgs, ScoreArgs, SearchArgs, TranslateArgs,
};
pub use train_args::{CorpusArgs, LogFormat, TrainArgs};

#[derive(Debug, Parser)]
#[command(
    name = "nmt",
    version = env!("NMT_VERSION_INFO"),
    about = "Train and run stacked-LSTM neural machine translation models (Sutskever et al. 2014).",
    after_help = "Example:\n  nmt train --corpus multi30k --pair de-en --out checkpoints/de-en --epochs 2\n  nmt translate --model checkpoints/de-en \"Ein Hund läuft im Schnee.\"\n  nmt eval --model checkpoints/de-en --corpus multi30k --pair de-en"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train tokenizers and a model from a parallel corpus.
    #[command(
        args_override_self = true,
        after_help = "Examples:\n  nmt train --src-file train.de --tgt-file train.en \\\n            --valid-src-file val.de --valid-tgt-file val.en --out checkpoints/de-en\n  nmt train --config run.toml --epochs 12          # flags override the file\n  nmt train --out checkpoints/de-en --resume       # continue after a kill or Ctrl-C\n  nmt train --print-config > run.toml\n\nWrites DIR/model.safetensors (the best model so far), DIR/config.json, DIR/src_tokenizer.json,\nDIR/tgt_tokenizer.json, DIR/train_config.toml, DIR/metrics.jsonl, DIR/train.log and\nDIR/checkpoints/step-N/ (weights, optimizer state, trainer state). Corpus files may be plain or gzip."
    )]
    Train(TrainArgs),
    /// Translate sentences with a trained model (beam search).
    #[command(
        after_help = "Example:\n  nmt translate --model checkpoints/de-en \"Ein Mann fährt Fahrrad.\"\n  nmt translate --model checkpoints/de-en --input test.de --output test.hyp.en\n\nSentences come from the arguments, else --input, else stdin (one per line);\none translation per line, in input order."
    )]
    Translate(TranslateArgs),
    /// Corpus BLEU and chrF (equal to sacrebleu's) of a model's translations or of given ones.
    #[command(
        after_help = "Examples:\n  nmt eval --model checkpoints/de-en --src-file test.de --ref-file test.en\n  nmt eval --model checkpoints/de-en --corpus multi30k --pair de-en\n  nmt eval --hyp-file test.hyp.en --ref-file test.en --json"
    )]
    Eval(EvalArgs),
    /// Forced decoding: the log-probability and perplexity of given translations.
    #[command(
        after_help = "Example:\n  nmt score --model checkpoints/de-en --src-file test.de --tgt-file test.en\n\nOne tab-separated line per sentence (line number, log-probability, target tokens with EOS,\nperplexity), then a line starting with `total` for the whole corpus."
    )]
    Score(ScoreArgs),
    /// Draw a run's training loss, validation perplexity and BLEU against the update step.
    #[command(
        after_help = "Example:\n  nmt plot checkpoints/de-en                   # writes checkpoints/de-en/plot.svg\n  nmt plot checkpoints/de-en --out curves.png"
    )]
    Plot(PlotArgs),
    /// Describe a model: configuration, parameters, vocabularies, training and evaluations.
    #[command(
        after_help = "Examples:\n  nmt info checkpoints/de-en\n  nmt info org/name@main --offline"
    )]
    Info(InfoArgs),
    /// Time the model's training step or decoding on random data (the flags and figures of
    /// shared/bench/pytorch_lstm_s2s.py; `make bench` runs both side by side).
    #[command(
        after_help = "Examples:\n  nmt bench train --layers 4 --threads 2\n  nmt bench decode-beam --beam 5 --batch 32 --json results.jsonl"
    )]
    Bench(crate::bench::BenchArgs),
    /// Experiments made of several training runs.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Serve models over HTTP: a JSON API and a page to try them in a browser.
    #[command(
        after_help = "Examples:\n  nmt serve --model checkpoints/de-en\n  curl -s localhost:8080/v1/translate -d '{\"text\": \"Ein Hund läuft.\"}'\n\nRoutes: POST /v1/translate ({\"text\": \"...\"} or {\"texts\": [...]}, optional model, beam,\nn_best, max_len_ratio, min_len, length_penalty, length_alpha), GET /v1/models, GET /health,\nGET /metrics (Prometheus) and GET / (the page). Requests arriving together share one beam\nsearch. SIGTERM or Ctrl-C stops after the requests in flight."
    )]
    Serve(serve::ServeArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  nmt completions bash > ~/.local/share/bash-completion/completions/nmt"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Manage corpora.
    #[command(subcommand)]
    Corpus(CorpusCommand),
}

#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Find a known corpus ($NMT_CORPORA/NAME, else corpora/NAME) or download it there.
    #[command(
        after_help = "Examples:\n  nmt corpus fetch multi30k\n  NMT_CORPORA=../shared/corpora nmt corpus fetch multi30k\n  nmt corpus fetch europarl\n\nmulti30k: Multi30k (de, en, fr; 29,000 training pairs), 9 files checked by SHA-256.\neuroparl: a Europarl v7 de-en subset (200,000 training pairs of 1-50 words, 2,000\nvalidation, 2,000 test from the file's last debates), cut from WMT13's\ntraining-parallel-europarl-v7.tgz (about 630 MB, checked by SHA-256). Offline, copy\nthat archive into corpora/europarl/ first."
    )]
    Fetch {
        /// The corpus to fetch: multi30k or europarl.
        name: String,
        /// Download cache folder (default: corpora/NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl Command {
    /// The `--threads` of a command that computes (None for the others).
    pub fn threads(&self) -> Option<usize> {
        match self {
            Command::Train(a) => Some(a.threads),
            Command::Translate(a) => Some(a.search.threads),
            Command::Eval(a) => Some(a.search.threads),
            Command::Score(a) => Some(a.threads),
            Command::Bench(a) => Some(a.threads),
            Command::Serve(a) => Some(a.search.threads),
            Command::Experiment(ExperimentCommand::Depth(a)) => Some(a.threads),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Train one model per LSTM depth under equal settings and compare perplexity, BLEU and
    /// chrF (Sutskever et al. 2014: each added layer lowered perplexity by nearly 10 %).
    #[command(
        after_help = "Examples:\n  nmt experiment depth --preset smoke --out checkpoints/depth-smoke\n  nmt experiment depth --corpus multi30k --pair de-en --out checkpoints/depth-de-en\n  nmt experiment depth --corpus multi30k --out checkpoints/depth-sgd --optimizer sgd --lr 0.7 --schedule paper\n\nDepths take turns, one epoch each, so an unfinished sweep compares them at equal epochs;\neach stops on its own (--patience epochs without a better validation perplexity, or\n--max-epochs). Run the same command again to continue after a kill or Ctrl-C: stopped\ndepths are skipped and the others resume from their checkpoints (a larger --max-epochs\ntrains capped depths on). A sweep too long for one machine can run in sittings, a few\ndepths each (--layers), and `nmt experiment compare` puts their results.json together.\nWrites DIR/experiment.json (the shared settings),\nDIR/tokenizer.json, DIR/depth-N/ (a run folder per depth, with evaluation.json and\ntest.hyp), DIR/results.json, DIR/results.md and DIR/depth.png + DIR/depth.svg."
    )]
    Depth(Box<DepthArgs>),
    /// Several depth sweeps side by side: per sweep the test perplexity change of each added
    /// layer (the paper: about -10 %) and the best depth, as a Markdown table.
    #[command(
        after_help = "Examples:\n  nmt experiment compare checkpoints/depth-de-en checkpoints/depth-sgd\n  nmt experiment compare docs/sweeps/*.json --plot docs/depth-sweeps.png --overwrite\n\nEach sweep is a folder written by `nmt experiment depth --out` or its results.json (also\nunder another name). A depth without test scores yet is bridged: its neighbours give the\nper-layer rate, (ppl_b / ppl_a)^(1 / (b - a)) - 1. The corpus size is shown where the\nsweep's training file can be read from the working directory.\n\nSweeps with the same settings and tokenizer are sittings of one sweep (for example\n`--layers 1` on one machine and `--layers 2` on another) and count as one: each depth\ncomes from the sitting that trained it furthest. Different tokenizers are refused."
    )]
    Compare(compare::CompareArgs),
}

/// A flag raised by the first Ctrl-C (training stops at the next update with a
/// checkpoint); a second Ctrl-C quits at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
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
