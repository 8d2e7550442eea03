//! `nmt experiment compare`: several depth sweeps side by side. Per sweep and added layer,
//! the change in test perplexity, beside the paper's "nearly 10 % lower per layer", as a
//! Markdown summary (and, in `compare_plot`, one picture).

use std::path::{Path, PathBuf};

use super::results::{self, Results};
use crate::data::corpus::read_lines;
use crate::error::{Error, Result};

/// The paper's figure (Sutskever et al. 2014, WMT'14 en->fr): each added layer lowered
/// perplexity by nearly 10 %.
pub const PAPER_CHANGE_PER_LAYER: f64 = -0.10;

/// One sweep's results and what to call it.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep's folder name (or the results file's stem when it is not results.json).
    pub name: String,
    pub results: Results,
    /// Training pairs, when the sweep's training file can be read from here.
    pub pairs: Option<usize>,
}

impl Sweep {
    /// "29k pairs", when the corpus size is known.
    pub fn pairs_text(&self) -> Option<String> {
        self.pairs.map(|p| match p {
            1000.. => format!("{}k pairs", p / 1000),
            _ => format!("{p} pairs"),
        })
    }
}

/// `path`: a sweep folder (`nmt experiment depth --out`), or a results.json file (or a copy
/// of one under another name).
pub fn read_sweep(path: &Path) -> Result<Sweep> {
    let file: PathBuf = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(Error::Usage(format!(
            "{}: no sweep results there; give a folder written by `nmt experiment depth --out` (it holds results.json) or a results.json file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| Error::read(&file, e))?;
    let results: Results = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not the results.json of a depth sweep ({e}); give one that `nmt experiment depth` wrote",
            file.display()
        ))
    })?;
    let named = if file.file_name().is_some_and(|n| n == "results.json") {
        file.parent().and_then(Path::file_name)
    } else {
        file.file_stem()
    };
    let name = named.map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // Relative paths in results.json are as the sweep's command saw them.
    let pairs = read_lines(&results.settings.files.train.0)
        .ok()
        .map(|l| l.len());
    Ok(Sweep {
        name,
        results,
        pairs,
    })
}

/// Change in test perplexity per added layer between each pair of neighbouring evaluated
/// depths: (from, to, change), change = (ppl_to / ppl_from)^(1 / (to - from)) - 1, so a
/// sweep of depths 1, 2, 4 gives 2 -> 4 as the per-layer rate over two layers.
pub fn per_layer_changes(r: &Results) -> Vec<(usize, usize, f64)> {
    let evaluated: Vec<(usize, f64)> = r
        .depths
        .iter()
        .filter_map(|d| d.test.as_ref().map(|t| (d.layers, t.test_ppl)))
        // A hand-edited or damaged file: no rate from a perplexity that is not one.
        .filter(|&(_, p)| p.is_finite() && p > 0.0)
        .collect();
    evaluated
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            let ((a, pa), (b, pb)) = (w[0], w[1]);
            (a, b, (pb / pa).powf(1.0 / (b - a) as f64) - 1.0)
        })
        .collect()
}

/// The corpus a sweep trained on: the folder its training file is in (multi30k, europarl).
fn corpus_name(r: &Results) -> String {
    r.settings
        .files
        .train
        .0
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
}

/// The settings that tell sweeps apart, in a few words.
pub fn describe(s: &Sweep) -> String {
    let st = &s.results.settings;
    let tc = &st.train;
    let opt = results::name(&tc.optimizer);
    let pairs = s.pairs_text().map_or(String::new(), |p| format!(" ({p})"));
    let attention = match st.attention.name() {
        "none" => String::new(),
        a => format!(", attention {a}"),
    };
    format!(
        "{}{pairs}, hidden {}, {opt} {}, dropout {}{attention}",
        corpus_name(&s.results),
        st.hidden,
        tc.lr,
        tc.dropout
    )
}

/// Most epochs of any depth, and whether every depth has stopped.
fn epochs(r: &Results) -> (usize, bool) {
    let most = r.depths.iter().map(|d| d.epochs).max().unwrap_or(0);
    let finished = r
        .depths
        .iter()
        .all(|d| d.status == "converged" || d.status == "epoch cap");
    (most, finished)
}

/// The depth with the highest test BLEU, and that BLEU.
fn best_depth(r: &Results) -> Option<(usize, f64)> {
    r.depths
        .iter()
        .filter_map(|d| d.test.as_ref().map(|t| (d.layers, t.test_bleu)))
        .fold(None, |best, (l, b)| match best {
            Some((_, bb)) if bb >= b => best,
            _ => Some((l, b)),
        })
}

fn percent(v: f64) -> String {
    format!("{:+.1} %", 100.0 * v)
}

/// The summary table: one row per sweep, one column per added layer (test perplexity change
/// per layer), the paper's row first.
pub fn summary_markdown(sweeps: &[Sweep]) -> String {
    let mut steps: Vec<(usize, usize)> = sweeps
        .iter()
        .flat_map(|s| per_layer_changes(&s.results))
        .map(|(a, b, _)| (a, b))
        .collect();
    steps.sort_unstable();
    steps.dedup();
    let mut md = String::from("| sweep | settings | epochs |");
    for (a, b) in &steps {
        md += &format!(" {a} -> {b} |");
    }
    md += " best depth (test BLEU) |\n|---|---|---:|";
    md += &"---:|".repeat(steps.len());
    md += "---|\n";
    md += &format!(
        "| paper | WMT'14 en->fr, 12M pairs, 1000 cells, SGD 0.7 | 7.5 |{} 4 (their choice) |\n",
        format!(" about {} |", percent(PAPER_CHANGE_PER_LAYER)).repeat(steps.len())
    );
    for s in sweeps {
        let changes = per_layer_changes(&s.results);
        let (most, finished) = epochs(&s.results);
        md += &format!(
            "| {} | {} | {most}{} |",
            s.name,
            describe(s),
            if finished { "" } else { " (unfinished)" }
        );
        for step in &steps {
            let cell = changes
                .iter()
                .find(|c| (c.0, c.1) == *step)
                .map_or(String::new(), |c| percent(c.2));
            md += &format!(" {cell} |");
        }
        md += &match best_depth(&s.results) {
            Some((l, b)) => format!(" {l} ({b:.2}) |\n"),
            None => " - |\n".into(),
        };
    }
    md
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Attention, TrainConfig};
    use crate::experiment::results::{DepthResult, Evaluation};
    use crate::experiment::sweep::{Settings, SweepFiles};

    pub(crate) fn depth(layers: usize, test_ppl: Option<f64>, bleu: f64) -> DepthResult {
        DepthResult {
            layers,
            parameters: 1000 * layers,
            status: "epoch cap".into(),
            epochs: 4,
            best_epoch: Some(4.0),
            secs_to_best: Some(1.0),
            train_secs: 1.0,
            tokens_per_sec: 1.0,
            best_valid_ppl: test_ppl,
            test: test_ppl.map(|p| Evaluation {
                best_step: 10,
                beam: 5,
                test_ppl: p,
                train_ppl: Some(p / 2.0),
                test_bleu: bleu,
                test_chrf: 2.0 * bleu,
            }),
            valid_curve: vec![(1.0, 50.0)],
        }
    }

    pub(crate) fn results(depths: Vec<DepthResult>) -> Results {
        let f = |n: &str| (PathBuf::from(n), PathBuf::from(n));
        Results {
            command: "nmt experiment depth".into(),
            settings: Settings {
                preset: "multi30k".into(),
                files: SweepFiles {
                    train: f("corpora/multi30k/train.de.gz"),
                    valid: f("corpora/multi30k/val.de.gz"),
                    test: f("corpora/multi30k/test.de.gz"),
                },
                vocab_size: 8000,
                emb: 256,
                hidden: 256,
                attention: Attention::None,
                train: TrainConfig::default(),
                beam: 5,
            },
            nmt_version: "nmt".into(),
            threads: 2,
            tokenizer_sha256: Some("ab".into()),
            depths,
        }
    }

    #[test]
    fn per_layer_change_spans_skipped_depths_and_unevaluated_ones() {
        let r = results(vec![
            depth(1, Some(10.0), 20.0),
            depth(2, Some(11.0), 19.0),
            depth(4, Some(9.0), 25.0),
        ]);
        let c = per_layer_changes(&r);
        assert_eq!((c[0].0, c[0].1), (1, 2));
        assert!((c[0].2 - 0.1).abs() < 1e-12);
        // 2 -> 4: 11 -> 9 over two layers is the square root of the ratio per layer.
        assert_eq!((c[1].0, c[1].1), (2, 4));
        assert!((c[1].2 - ((9.0f64 / 11.0).sqrt() - 1.0)).abs() < 1e-12);
        // A depth without test scores yet is bridged, not read as zero.
        let r = results(vec![
            depth(1, Some(10.0), 20.0),
            depth(2, None, 0.0),
            depth(3, Some(12.1), 18.0),
        ]);
        let c = per_layer_changes(&r);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0, c[0].1), (1, 3));
        assert!((c[0].2 - 0.1).abs() < 1e-9);
        // So is one whose perplexity is no number (a damaged file), instead of a NaN rate.
        let r = results(vec![
            depth(1, Some(10.0), 20.0),
            depth(2, Some(f64::NAN), 0.0),
            depth(3, Some(0.0), 0.0),
            depth(4, Some(13.31), 18.0),
        ]);
        let c = per_layer_changes(&r);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].0, c[0].1), (1, 4));
        assert!((c[0].2 - 0.1).abs() < 1e-9);
    }

    #[test]
    fn summary_has_a_column_per_added_layer_and_marks_unfinished_sweeps() {
        let done = Sweep {
            name: "depth-a".into(),
            results: results(vec![
                depth(1, Some(10.0), 24.0),
                depth(2, Some(11.0), 23.0),
                depth(3, Some(12.1), 18.0),
            ]),
            pairs: Some(29_000),
        };
        let mut running = Sweep {
            name: "depth-b".into(),
            results: results(vec![depth(1, Some(8.0), 30.0), depth(2, Some(6.0), 33.0)]),
            pairs: None,
        };
        running.results.depths[1].status = "training".into();
        let md = summary_markdown(&[done, running]);
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].contains("| 1 -> 2 | 2 -> 3 |"), "{md}");
        assert!(lines[2].starts_with("| paper |"), "{md}");
        assert!(
            lines[3].contains("multi30k (29k pairs), hidden 256")
                && lines[3].contains("| +10.0 % | +10.0 % |")
                && lines[3].ends_with("| 1 (24.00) |"),
            "{md}"
        );
        assert!(
            lines[4].contains("| 4 (unfinished) | -25.0 % |  | 2 (33.00) |"),
            "{md}"
        );
    }
}
