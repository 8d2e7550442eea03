//! `nmt experiment compare`: several depth sweeps' summary table, and their plot.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::output::check_output;
use crate::error::Error;
use crate::experiment::{compare, compare_plot, results, sittings};

/// `nmt experiment compare`'s options.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Sweep folders written by `nmt experiment depth --out` (or their results.json files).
    #[arg(required = true)]
    pub sweeps: Vec<PathBuf>,
    /// Also draw the comparison into this .svg or .png file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Replace an existing --plot file.
    #[arg(long)]
    pub overwrite: bool,
    /// After the summary, every sweep's own tables (its results.md: a row per depth, and the
    /// validation perplexity after each epoch), sittings put together.
    #[arg(long)]
    pub details: bool,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let sweeps = a
        .sweeps
        .iter()
        .map(|p| compare::read_sweep(p))
        .collect::<crate::error::Result<Vec<_>>>()?;
    let sweeps = sittings::merge(sweeps)?;
    if let Some(out) = &a.plot {
        check_output(out, a.overwrite, "--plot")?;
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if ext != "svg" && ext != "png" {
            usage!(
                "--plot {}: the plot file must end in .svg or .png",
                out.display()
            );
        }
        // Drawn beside the final name, then renamed over it: an old picture is replaced
        // only by a whole new one.
        let tmp = out.with_extension(format!("tmp.{ext}"));
        compare_plot::draw(&sweeps, &tmp)?;
        std::fs::rename(&tmp, out).map_err(|e| Error::write(out, e))?;
    }
    print!("{}", compare::summary_markdown(&sweeps));
    if a.details {
        for s in &sweeps {
            println!("\n## {}\n", s.name);
            print!("{}", results::tables(&s.results));
        }
    }
    if let Some(out) = &a.plot {
        println!("\nwrote {}", out.display());
    }
    Ok(())
}
