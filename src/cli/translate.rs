//! `nmt translate`: sentences from the arguments, a file, stdin or an interactive prompt.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::loading::translator;
use super::output::{check_output, render, write_lines};
use super::{OutputFormat, TranslateArgs};
use crate::data::corpus::{lines_of, read_lines};
use crate::inference::Translator;

/// Prompts on stderr and translates each line as it is entered, until EOF.
fn interactive(t: &Translator, format: OutputFormat, alignments: bool) -> Result<()> {
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
        for out in render(&t.translate_nbest(&[line])?, format, id, alignments) {
            writeln!(stdout, "{out}")?;
        }
        stdout.flush()?;
        id += 1;
    }
}

pub fn run(a: TranslateArgs) -> Result<()> {
    if let Some(out) = &a.output {
        check_output(out, a.overwrite, "--output")?;
    }
    let t = translator(&a.model, &a.search, a.n_best)?;
    if a.alignments && t.attending_model().is_none() {
        usage!(
            "--alignments needs a model trained with --attention dot or general; {} has no attention",
            a.model.join(", ")
        );
    }
    let lines: Vec<String> = if !a.text.is_empty() {
        a.text.clone()
    } else if let Some(input) = &a.input {
        read_lines(input)?
    } else if std::io::stdin().is_terminal() && a.output.is_none() {
        return interactive(&t, a.format, a.alignments);
    } else {
        lines_of(std::io::stdin().lock(), Path::new("<stdin>"), false)?
    };
    let out = render(&t.translate_nbest(&lines)?, a.format, 1, a.alignments);
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
