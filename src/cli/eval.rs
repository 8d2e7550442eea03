//! `nmt eval`: corpus BLEU and chrF of a model's translations (with perplexity and speed), or
//! of given ones; a local model remembers its evaluations.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::corpus::{by_name, known_corpus};
use super::loading::translator;
use super::output::{check_output, write_lines};
use super::EvalArgs;
use crate::card;
use crate::data::corpus::read_parallel;
use crate::evaluation::evaluate;
use crate::hub::ModelRef;
use crate::metrics::{Bleu, Chrf};

/// Source and reference files of `eval` with a model.
fn eval_files(a: &EvalArgs) -> Result<(PathBuf, PathBuf)> {
    if let (Some(s), Some(r)) = (&a.src_file, &a.ref_file) {
        return Ok((s.clone(), r.clone()));
    }
    // The split is checked before the corpus is looked up (which may download it).
    let split = match &a.corpus.corpus {
        Some(name) => {
            let c = by_name(name)?;
            let split = a.split.clone().unwrap_or(c.splits[2].to_string());
            if !c.splits.contains(&split.as_str()) {
                usage!(
                    "unknown split `{split}` of {name}: use one of {}",
                    c.splits.join(", ")
                );
            }
            split
        }
        None => String::new(),
    };
    match (known_corpus(&a.corpus)?, &a.src_file, &a.ref_file) {
        (Some((m, s, t)), None, None) => Ok((m.file(&split, &s), m.file(&split, &t))),
        _ => usage!("give --src-file and --ref-file, or --corpus multi30k|europarl"),
    }
}

pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(out) = &a.hyp_output {
        check_output(out, a.overwrite, "--hyp-output")?;
    }
    let mut report = serde_json::Map::new();
    let (sentences, bleu, chrf) = if let Some(hyp_file) = &a.hyp_file {
        let Some(ref_file) = a.ref_file.as_ref() else {
            usage!("--hyp-file needs --ref-file, the references to score it against");
        };
        let (hyps, refs) = read_parallel(hyp_file, ref_file)?;
        (
            hyps.len(),
            Bleu::corpus(&hyps, &refs),
            Chrf::corpus(&hyps, &refs),
        )
    } else {
        let (src_file, ref_file) = eval_files(&a)?;
        let (src, refs) = read_parallel(&src_file, &ref_file)?;
        let t = translator(&a.model, &a.search, 1)?;
        let scores = evaluate(&t, &src, &refs, 4000)?;
        if let Some(out) = &a.hyp_output {
            write_lines(out, &scores.hyps)?;
        }
        for i in 0..a.show.min(src.len()) {
            if !a.json {
                println!(
                    "source:      {}\ntranslation: {}\nreference:   {}\n",
                    src[i], scores.hyps[i], refs[i]
                );
            }
        }
        report.insert("perplexity".into(), scores.perplexity.into());
        report.insert("perplexity_tokens".into(), scores.perplexity_tokens.into());
        report.insert("models".into(), a.model.clone().into());
        report.insert("ref_file".into(), ref_file.display().to_string().into());
        report.insert("beam".into(), a.search.beam.into());
        report.insert("sentences_per_sec".into(), scores.sentences_per_sec.into());
        report.insert("tokens_per_sec".into(), scores.tokens_per_sec.into());
        (scores.hyps.len(), scores.bleu, scores.chrf)
    };
    report.insert("sentences".into(), sentences.into());
    report.insert("bleu".into(), bleu.score.into());
    report.insert("bleu_verbose".into(), bleu.format().into());
    report.insert("bleu_signature".into(), Bleu::SIGNATURE.into());
    report.insert("chrf".into(), chrf.score.into());
    report.insert("chrf_signature".into(), Chrf::SIGNATURE.into());
    // A local single model remembers its evaluations (model card and `nmt info`).
    if let [m] = a.model.as_slice() {
        if ModelRef::parse(m) == ModelRef::Dir(PathBuf::from(m.as_str())) {
            let mut rec = report.clone();
            rec.remove("perplexity_tokens");
            card::record_evaluation(Path::new(m), &serde_json::Value::Object(rec))?;
        }
    }
    if a.json {
        println!("{}", serde_json::Value::Object(report));
        return Ok(());
    }
    println!("{}", bleu.format());
    println!("{}", Bleu::SIGNATURE);
    println!("{}", chrf.format());
    println!("{}", Chrf::SIGNATURE);
    if let Some(p) = report.get("perplexity") {
        println!(
            "perplexity = {:.2} ({} target tokens, teacher-forced{})",
            p.as_f64().unwrap_or(f64::NAN),
            report["perplexity_tokens"],
            if a.model.len() > 1 {
                ", first model"
            } else {
                ""
            }
        );
        println!(
            "decoded {} sentences: {:.1} sentences/s, {:.0} tokens/s (beam {})",
            sentences,
            report["sentences_per_sec"].as_f64().unwrap_or(0.0),
            report["tokens_per_sec"].as_f64().unwrap_or(0.0),
            a.search.beam
        );
    }
    Ok(())
}
