//! The `nmt` binary: parse the command line and dispatch to `nmt::cli`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use nmt::cli::config_file::expand_train_config;
use nmt::cli::loading::model_dir;
use nmt::cli::output::check_output;
use nmt::cli::{self, Cli, Command, CorpusCommand, ExperimentCommand, PlotArgs};
use nmt::error::ExitClass;
use nmt::{card, device};

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

fn main() -> ExitCode {
    keep_freed_memory();
    let args = match expand_train_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let cli = Cli::parse_from(args);
    let threads = cli.command.threads();
    if let Err(e) = device::check_threads(threads) {
        return fail(&e.into());
    }
    match device::run_on_pool(threads, || run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `e` and gives its class's exit status (docs/reliability.md): the first library
/// error in the chain decides; an error of the binary's own is a runtime failure.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    let class = e
        .chain()
        .find_map(|c| c.downcast_ref::<nmt::Error>())
        .map_or(ExitClass::Runtime, nmt::Error::exit_class);
    ExitCode::from(class.code())
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => cli::train::run(a),
        Command::Translate(a) => cli::translate::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Score(a) => cli::score::run(a),
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
        Command::Corpus(CorpusCommand::Fetch { name, dir }) => {
            cli::corpus::fetch(&name, dir.as_deref())
        }
        Command::Experiment(ExperimentCommand::Depth(a)) => cli::depth::run(*a),
        Command::Experiment(ExperimentCommand::Compare(a)) => cli::compare::run(a),
    }
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
