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

/// Renders the n-best lists of sentences numbered from `first_id`; with `alignments`, each
/// hypothesis's hard alignment as Marian prints it (`text ||| 0-0 2-1`, source-target
/// subword indices) in plain text, a last column in TSV, a field in JSON lines.
pub fn render(
    all: &[Vec<Translation>],
    format: OutputFormat,
    first_id: usize,
    alignments: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, hyps) in all.iter().enumerate() {
        for (rank, h) in hyps.iter().enumerate() {
            let pairs = || {
                let p: Vec<String> = h
                    .alignment
                    .iter()
                    .map(|(s, t)| format!("{s}-{t}"))
                    .collect();
                p.join(" ")
            };
            out.push(match format {
                OutputFormat::Plain if alignments => format!("{} ||| {}", h.text, pairs()),
                OutputFormat::Plain => h.text.clone(),
                OutputFormat::Tsv => {
                    let mut line =
                        format!("{}\t{}\t{:.4}\t{}", first_id + i, rank + 1, h.score, h.text);
                    if alignments {
                        line.push('\t');
                        line.push_str(&pairs());
                    }
                    line
                }
                OutputFormat::Jsonl => {
                    let mut v = serde_json::json!({
                        "id": first_id + i,
                        "rank": rank + 1,
                        "score": h.score,
                        "log_prob": h.log_prob,
                        "text": h.text,
                    });
                    if alignments {
                        v["alignment"] = serde_json::json!(h.alignment);
                    }
                    v.to_string()
                }
            });
        }
    }
    out
}
