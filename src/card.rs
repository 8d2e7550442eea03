//! What a run folder says about itself: DIR/run_info.json (written when training starts),
//! the generated model card DIR/README.md, and `nmt info`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_text_atomic;
use crate::checkpoint;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::params::param_count;
use crate::run_log::METRICS_FILE;

pub const RUN_INFO_FILE: &str = "run_info.json";
pub const CARD_FILE: &str = "README.md";
pub const EVALS_FILE: &str = "evaluations.jsonl";

/// A data file a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub role: String,
    pub path: PathBuf,
    pub lines: usize,
}

/// Facts fixed when training starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub source_language: String,
    pub target_language: String,
    pub command: String,
    pub data: Vec<DataFile>,
}

/// The language code a corpus file name suggests (`train.de.gz` -> `de`), if any.
pub fn language_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let ext = Path::new(name).extension()?.to_str()?;
    let ext = ext.to_lowercase();
    let code = (2..=3).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphabetic());
    (code && !["txt", "tok", "raw", "bpe", "tsv"].contains(&ext.as_str())).then_some(ext)
}

pub fn write_run_info(dir: &Path, info: &RunInfo) -> Result<()> {
    let json = serde_json::to_string_pretty(info).map_err(|e| Error::Config(e.to_string()))?;
    write_text_atomic(&dir.join(RUN_INFO_FILE), &(json + "\n"))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Everything known about a run folder.
pub struct Summary {
    pub cfg: ModelConfig,
    pub info: Option<RunInfo>,
    /// Updates done and the last epoch reached, from metrics.jsonl.
    pub steps: Option<u64>,
    /// (step, validation perplexity, validation BLEU) of the best validation.
    pub best_valid: Option<(u64, f64, Option<f64>)>,
    /// Evaluations recorded by `nmt eval` (one JSON object each).
    pub evaluations: Vec<serde_json::Value>,
}

/// Reads what `dir` holds (config.json is required).
pub fn summarize(dir: &Path) -> Result<Summary> {
    let cfg = checkpoint::load_config(dir)?;
    let info = read_json::<RunInfo>(&dir.join(RUN_INFO_FILE));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(dir.join(METRICS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let steps = records.iter().filter_map(|r| r["step"].as_u64()).max();
    let best_valid = records
        .iter()
        .rev()
        .find(|r| r["kind"] == "valid" && r["best"] == true)
        .and_then(|r| {
            Some((
                r["step"].as_u64()?,
                r["valid_ppl"].as_f64()?,
                r["valid_bleu"].as_f64(),
            ))
        });
    let evaluations = std::fs::read_to_string(dir.join(EVALS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(Summary {
        cfg,
        info,
        steps,
        best_valid,
        evaluations,
    })
}

impl Summary {
    /// A short human-readable description (what `nmt info` prints).
    pub fn describe(&self) -> String {
        let c = &self.cfg;
        let mut s = format!(
            "stacked-LSTM encoder-decoder (Sutskever et al. 2014), format version {}\n\
             layers: {} encoder + {} decoder, embedding {}, hidden {}, source reversed: {}\n\
             vocabulary: {} source / {} target subwords (pad {}, bos {}, eos {})\n\
             parameters: {}\n",
            c.format_version,
            c.layers,
            c.layers,
            c.emb,
            c.hidden,
            c.reverse_source,
            c.src_vocab,
            c.tgt_vocab,
            c.pad_id,
            c.bos_id,
            c.eos_id,
            param_count(c)
        );
        if let Some(i) = &self.info {
            s += &format!(
                "languages: {} -> {}\n",
                i.source_language, i.target_language
            );
            for d in &i.data {
                s += &format!(
                    "{} data: {} ({} lines)\n",
                    d.role,
                    d.path.display(),
                    d.lines
                );
            }
            s += &format!("trained with: {}\n", i.command);
        }
        if let Some(steps) = self.steps {
            s += &format!("updates: {steps}\n");
        }
        if let Some((step, ppl, bleu)) = self.best_valid {
            s += &format!(
                "best validation: perplexity {ppl:.2}{} at step {step}\n",
                bleu.map(|b| format!(", BLEU {b:.2}")).unwrap_or_default()
            );
        }
        for e in &self.evaluations {
            s += &format!(
                "evaluated on {}: BLEU {:.2}, chrF2 {:.2} (beam {})\n",
                e["ref_file"].as_str().unwrap_or("?"),
                e["bleu"].as_f64().unwrap_or(f64::NAN),
                e["chrf"].as_f64().unwrap_or(f64::NAN),
                e["beam"]
            );
        }
        s
    }

    /// The model card, Markdown with the Hub's YAML header.
    pub fn card(&self) -> String {
        let (src, tgt) = self
            .info
            .as_ref()
            .map(|i| (i.source_language.clone(), i.target_language.clone()))
            .unwrap_or(("source".into(), "target".into()));
        let mut s = format!(
            "---\nlanguage:\n- {src}\n- {tgt}\ntags:\n- translation\n- nmt\n- lstm\nlibrary_name: nmt\n---\n\n\
             # {src}->{tgt} stacked-LSTM translator\n\n\
             Trained with [nmt](https://crates.io/crates/nmt): a Sutskever et al. (2014) encoder-decoder\n\
             whose encoder reads the source reversed.\n\n```text\n{}```\n\n\
             Translate with `nmt translate --model <this folder or Hub repo id> \"...\"`.\n",
            self.describe()
        );
        if !self.evaluations.is_empty() {
            s += "\n## Evaluations\n\n| reference | BLEU | chrF2 | beam | BLEU signature |\n| --- | --- | --- | --- | --- |\n";
            for e in &self.evaluations {
                s += &format!(
                    "| {} | {:.2} | {:.2} | {} | {} |\n",
                    e["ref_file"].as_str().unwrap_or("?"),
                    e["bleu"].as_f64().unwrap_or(f64::NAN),
                    e["chrf"].as_f64().unwrap_or(f64::NAN),
                    e["beam"],
                    e["bleu_signature"].as_str().unwrap_or("")
                );
            }
        }
        s
    }
}

/// Rewrites DIR/README.md from what the folder holds.
pub fn write_card(dir: &Path) -> Result<()> {
    write_text_atomic(&dir.join(CARD_FILE), &summarize(dir)?.card())
}

/// Records one evaluation of the model in `dir` and refreshes the card.
pub fn record_evaluation(dir: &Path, record: &serde_json::Value) -> Result<()> {
    let path = dir.join(EVALS_FILE);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&record.to_string());
    text.push('\n');
    write_text_atomic(&path, &text)?;
    write_card(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_from_file_names() {
        assert_eq!(
            language_of(Path::new("data/train.de.gz")),
            Some("de".into())
        );
        assert_eq!(language_of(Path::new("val.en")), Some("en".into()));
        assert_eq!(language_of(Path::new("corpus.txt")), None);
        assert_eq!(language_of(Path::new("corpus")), None);
    }
}
