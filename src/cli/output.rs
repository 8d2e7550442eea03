//! What the commands write: files that are never replaced unasked, and n-best lists as plain
//! text, TSV or JSON lines.

use std::path::Path;

use anyhow::Result;

use super::OutputFormat;
use crate::atomic_file;
use crate::inference::Translation;

/// Refuses to replace an existing file unless asked to.
pub fn check_output(path: &Path, overwrite: bool, flag: &str) -> Result<()> {
    if path.exists() && !overwrite {
        usage!(
            "{} already exists; pass --overwrite to replace it, or choose another {flag}",
            path.display()
        );
    }
    Ok(())
}

pub fn write_lines(path: &Path, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    atomic_file::write_text_atomic(path, &text)?;
    Ok(())
}

/// Renders the n-best lists of sentences numbered from `first_id`.
pub fn render(all: &[Vec<Translation>], format: OutputFormat, first_id: usize) -> Vec<String> {
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
