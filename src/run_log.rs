//! What a run reports: DIR/metrics.jsonl (one JSON object per log interval and per
//! validation), DIR/train.log (human-readable lines), and optionally the same JSON on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOG_FILE: &str = "train.log";

/// Appends to the run's log files.
pub struct RunLog {
    dir: PathBuf,
    /// Also print each metrics line on stdout (`--log-format json`).
    pub echo_json: bool,
    /// Print human-readable lines on stderr.
    pub echo_text: bool,
}

fn append(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::write(path, e))
}

impl RunLog {
    pub fn new(dir: &Path, echo_json: bool, echo_text: bool) -> Self {
        RunLog {
            dir: dir.to_path_buf(),
            echo_json,
            echo_text,
        }
    }

    /// One metrics record.
    pub fn metrics(&self, record: serde_json::Value) -> Result<()> {
        let line = record.to_string();
        if self.echo_json {
            println!("{line}");
        }
        append(&self.dir.join(METRICS_FILE), &line)
    }

    /// One human-readable line.
    pub fn text(&self, line: &str) -> Result<()> {
        if self.echo_text {
            eprintln!("{line}");
        }
        append(&self.dir.join(LOG_FILE), line)
    }

    /// Drops metrics recorded after `step` (work a resumed run is about to redo).
    pub fn truncate_after(&self, step: usize) -> Result<()> {
        let path = self.dir.join(METRICS_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s as usize <= step)
            })
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        crate::atomic_file::write_text_atomic(&path, &out)
    }
}
