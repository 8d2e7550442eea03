//! `nmt train --config FILE` and `--resume`: options from TOML files, layered under the
//! command line (saved options of the resumed run, then the file, then the flags).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;
use crate::error::Error;

/// `nmt train` options from TOML, as command-line flags placed before the user's own (which
/// therefore win): first the resumed run's saved options, then `--config FILE`.
pub fn expand_train_config(mut args: Vec<OsString>) -> Result<Vec<OsString>> {
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
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::Usage(format!(
            "cannot read config file {}: {e}; check the --config path",
            file.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Error::Usage(format!("{} is not valid TOML: {e}", file.display())))?;
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
            usage!(
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
            other => usage!(
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
