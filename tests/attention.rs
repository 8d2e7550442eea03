//! Luong attention (`--attention dot|general`): padded source positions get no weight, the
//! CPU search step equals the tensor path through beam reordering, every gradient equals the
//! reference path's and finite differences, and checkpoints round-trip (old ones without the
//! field load as the paper's model).

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{rel_err, sample_sources, scorers_step_alike, small_cfg, trainable_model};
use nmt::config::{Attention, ModelConfig, SearchConfig};
use nmt::data::batch::{encode_sources, Batch, Example};
use nmt::inference::scorer::ModelScorer;
use nmt::model::decode_step::DecodeWeights;
use nmt::model::lstm::LstmPath;
use nmt::model::{params, Seq2Seq};
use nmt::search::beam::beam_search;

fn attention_cfg(kind: Attention, layers: usize) -> ModelConfig {
    ModelConfig {
        attention: kind,
        ..small_cfg(layers, 30, 8, 12)
    }
}

fn example(src: Vec<u32>, tgt: Vec<u32>) -> Example {
    Example { src, tgt }
}

#[test]
fn weight_count_and_names_follow_the_attention_kind() {
    for kind in [Attention::None, Attention::Dot, Attention::General] {
        let cfg = attention_cfg(kind, 2);
        assert_eq!(cfg.weight_count() as usize, params::param_count(&cfg));
        let names: Vec<String> = params::param_shapes(&cfg)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names.iter().any(|n| n == params::ATTN_IN),
            kind == Attention::General
        );
        assert_eq!(names.iter().any(|n| n == params::ATTN_OUT), kind.is_on());
        let layer0 = params::param_shapes(&cfg)
            .into_iter()
            .find(|(n, _)| n == "decoder.weight_ih_l0")
            .unwrap()
            .1;
        let feed = if kind.is_on() { cfg.hidden } else { 0 };
        assert_eq!(layer0, vec![4 * cfg.hidden, cfg.emb + feed]);
    }
    // Without attention the same seed draws the same weights as before the option existed.
    let plain = params::init_uniform(&small_cfg(2, 30, 8, 12), 3, &Device::Cpu).unwrap();
    let dot = params::init_uniform(&attention_cfg(Attention::General, 2), 3, &Device::Cpu).unwrap();
    assert_eq!(
        plain["encoder.weight_hh_l1"].to_vec2::<f32>().unwrap(),
        dot["encoder.weight_hh_l1"].to_vec2::<f32>().unwrap()
    );
}

/// Padded source positions get exactly zero weight: a sentence's attention weights, and so
/// its loss, are the same alone and beside longer sentences.
#[test]
fn padded_source_positions_get_no_attention() {
    for kind in [Attention::Dot, Attention::General] {
        let cfg = attention_cfg(kind, 2);
        let (model, _) = trainable_model(&cfg, 5);
        let model = model.detached();
        let short = example(vec![5, 6], vec![7, 8, 9]);
        let long = example((4..20).collect(), (4..12).collect());
        let dev = Device::Cpu;
        let weights = |xs: &[&Example]| {
            let srcs: Vec<&[u32]> = xs.iter().map(|e| e.src.as_slice()).collect();
            let (ids, mask) = encode_sources(&srcs, &cfg, &dev).unwrap();
            let (_, memory) = model.encode_memory(&ids, mask.as_ref()).unwrap();
            // Queries large enough that the scores are far from uniform.
            let mut rng = nmt::rng::Rng::new(4);
            let query = common::rand_tensor(&mut rng, &[xs.len(), cfg.hidden], 3.0);
            let query = query
                .narrow(0, 0, 1)
                .unwrap()
                .repeat((xs.len(), 1))
                .unwrap();
            let (_, w) = model.attention().unwrap().attend(&query, &memory).unwrap();
            w.get(0).unwrap().to_vec1::<f32>().unwrap()
        };
        let alone = weights(&[&short]);
        let mixed = weights(&[&short, &long]);
        let pads = mixed.len() - alone.len();
        assert!(
            mixed[..pads].iter().all(|&w| w == 0.0),
            "{kind:?}: {mixed:?}"
        );
        for (a, m) in alone.iter().zip(&mixed[pads..]) {
            assert!(
                (a - m).abs() < 1e-6,
                "{kind:?}: {alone:?} alone, {mixed:?} padded"
            );
        }
        let nll = |xs: &[&Example]| {
            let b = Batch::new(xs, &cfg, &dev).unwrap();
            model.sentence_nll(&b).unwrap().to_vec1::<f32>().unwrap()[0]
        };
        let (a, m) = (nll(&[&short]), nll(&[&short, &long]));
        assert!(
            (a - m).abs() < 1e-5 * a.abs(),
            "{kind:?}: loss {a} alone, {m} padded"
        );
    }
}

/// Search's CPU step with attention (memory per sentence, rows pointing at it) gives the
/// tensor path's log-probabilities and peaks through reorders, and beam search gives the
/// same translations and alignments on both paths.
#[test]
fn cpu_attention_steps_match_tensor_steps_through_reorders() {
    for kind in [Attention::Dot, Attention::General] {
        let cfg = attention_cfg(kind, 3);
        let (model, _) = trainable_model(&cfg, 11);
        let model = model.detached();
        let fast = DecodeWeights::new(&model).unwrap().expect("a CPU model");
        let plain = ModelScorer::new(&model);
        let cpu = ModelScorer {
            fast: Some(&fast),
            ..ModelScorer::new(&model)
        };
        for n in [3, 9] {
            let owned = sample_sources(n, 30);
            let sources: Vec<&[u32]> = owned.iter().map(|s| s.as_slice()).collect();
            let label = format!("{kind:?}");
            scorers_step_alike(&plain, &cpu, &sources, cfg.bos_id, 30, &label);
            let search = SearchConfig {
                beam: 4,
                n_best: 2,
                ..SearchConfig::default()
            };
            let want = beam_search(&plain, &sources, &search, cfg.bos_id, cfg.eos_id).unwrap();
            let got = beam_search(&cpu, &sources, &search, cfg.bos_id, cfg.eos_id).unwrap();
            for ((w, g), src) in want.iter().zip(&got).zip(&owned) {
                for (w, g) in w.iter().zip(g) {
                    assert_eq!(w.tokens, g.tokens);
                    assert_eq!(w.alignment, g.alignment);
                    assert_eq!(g.alignment.len(), g.tokens.len());
                    assert!(g.alignment.iter().all(|&j| (j as usize) < src.len()));
                    assert!((w.score - g.score).abs() < 1e-4);
                }
            }
            // Searched alone, each sentence gets what it got in the batch.
            for (i, s) in sources.iter().enumerate() {
                let one = beam_search(&cpu, &[s], &search, cfg.bos_id, cfg.eos_id).unwrap();
                assert_eq!(one[0][0].tokens, got[i][0].tokens, "{kind:?} sentence {i}");
                assert_eq!(one[0][0].alignment, got[i][0].alignment);
            }
        }
    }
}

fn batch_for(cfg: &ModelConfig) -> Batch {
    let xs = [
        example(vec![5, 6, 7], vec![8, 9, 10, 11]),
        example((4..12).collect(), vec![12, 13]),
        example(vec![20], (14..20).collect()),
    ];
    let refs: Vec<&Example> = xs.iter().collect();
    Batch::new(&refs, cfg, &Device::Cpu).unwrap()
}

fn loss(model: &Seq2Seq, batch: &Batch) -> f64 {
    let (nll, _) = model.forward_teacher(batch).unwrap();
    nll.to_scalar::<f32>().unwrap() as f64
}

/// The fused-layer path's gradients (every parameter) equal the plain Candle ops path's and
/// the cell-op path's, and the attention's own weights' gradients equal central finite differences.
#[test]
fn attention_gradients_match_the_reference_and_finite_differences() {
    for kind in [Attention::Dot, Attention::General] {
        let cfg = attention_cfg(kind, 2);
        let batch = batch_for(&cfg);
        let (fused, vars) = trainable_model(&cfg, 9);
        let (l1, _) = fused.forward_train(&batch, None, 0.1).unwrap();
        let g1 = l1.backward().unwrap();
        // The plain-ops oracle, and the cell-op path CUDA runs (its CPU implementation here).
        for path in [LstmPath::Reference, LstmPath::Cell] {
            let other = fused.clone().with_path(path);
            let (l2, _) = other.forward_train(&batch, None, 0.1).unwrap();
            let g2 = l2.backward().unwrap();
            for (name, v) in &vars {
                let (a, b) = (g1.get(v), g2.get(v));
                let (a, b) = (a.expect(name), b.expect(name));
                let e = rel_err(a, b);
                assert!(
                    e < 1e-4,
                    "{kind:?} {path:?} {name}: gradient differs by {e}"
                );
            }
        }
        // Finite differences on a few entries of the attention's weights (f64 of f32 sums:
        // a loose tolerance, still far below a wrong formula's error).
        let plain = fused.detached();
        let tensors = plain.named_tensors();
        let mut names = vec![params::ATTN_OUT];
        if kind == Attention::General {
            names.push(params::ATTN_IN);
        }
        for name in names {
            let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
            let (_, nll) = fused.forward_train(&batch, None, 0.0).unwrap();
            let grad = nll
                .backward()
                .unwrap()
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap();
            let grad = grad.to_vec1::<f32>().unwrap();
            let w = tensors[name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for i in [0, w.len() / 3, w.len() - 1] {
                let at = |delta: f32| {
                    let mut moved = w.clone();
                    moved[i] += delta;
                    let mut t: HashMap<String, Tensor> = tensors.clone();
                    let shape = tensors[name].shape().clone();
                    t.insert(
                        name.into(),
                        Tensor::from_vec(moved, shape, &Device::Cpu).unwrap(),
                    );
                    loss(&Seq2Seq::from_tensors(&cfg, &t).unwrap(), &batch)
                };
                let eps = 1e-2;
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                let analytic = grad[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-2 * analytic.abs().max(0.05),
                    "{kind:?} {name}[{i}]: finite difference {numeric}, gradient {analytic}"
                );
            }
        }
    }
}

/// A config.json written before the field existed loads as the paper's model.
#[test]
fn config_without_attention_field_is_the_paper_model() {
    let mut json = serde_json::to_value(ModelConfig::default()).unwrap();
    json.as_object_mut().unwrap().remove("attention");
    let cfg: ModelConfig = serde_json::from_value(json).unwrap();
    assert_eq!(cfg.attention, Attention::None);
    let general = ModelConfig {
        attention: Attention::General,
        ..ModelConfig::default()
    };
    let text = serde_json::to_string(&general).unwrap();
    assert!(text.contains("\"attention\":\"general\""), "{text}");
}

fn nmt() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_nmt"));
    c.env_remove("NMT_CORPORA");
    c
}

fn toy_attention_args(out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let f = |n: &str| common::toy(n).to_string_lossy().into_owned();
    let mut args: Vec<String> = vec!["train".into(), "--src-file".into(), f("train.de")];
    args.extend(["--tgt-file".into(), f("train.en")]);
    args.extend(["--out".into(), out.to_string_lossy().into_owned()]);
    let fixed = [
        "--layers",
        "2",
        "--hidden",
        "32",
        "--emb",
        "16",
        "--vocab-size",
        "300",
        "--epochs",
        "2",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-tokens",
        "400",
        "--dropout",
        "0.1",
        "--save-every",
        "10",
        "--quiet",
    ];
    args.extend(fixed.iter().chain(extra).map(|s| s.to_string()));
    args
}

fn run_ok(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "nmt failed: {}{}",
        common::text(&o.stderr),
        common::text(&o.stdout)
    );
    common::text(&o.stdout)
}

/// Trained with `--attention`, a run folder says so in config.json, resumes bit-exactly,
/// translates with `--alignments` (one source-target pair per output subword) and scores;
/// `--alignments` on a model without attention is a usage error naming the flag.
#[test]
fn attention_runs_resume_exactly_and_print_alignments() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, cut) = (tmp.path().join("whole"), tmp.path().join("cut"));
    run_ok(nmt().args(toy_attention_args(&whole, &["--attention", "dot"])));
    run_ok(nmt().args(toy_attention_args(
        &cut,
        &["--attention", "dot", "--max-steps", "25"],
    )));
    let dir = cut.to_str().unwrap();
    run_ok(nmt().args([
        "train",
        "--out",
        dir,
        "--resume",
        "--max-steps",
        "0",
        "--quiet",
    ]));
    let weights = |d: &std::path::Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        weights(&whole) == weights(&cut),
        "stop + resume differs from one run"
    );
    let config = std::fs::read_to_string(whole.join("config.json")).unwrap();
    assert!(config.contains("\"attention\": \"dot\""), "{config}");

    let model = whole.to_str().unwrap();
    let out = run_ok(
        nmt()
            .args(["translate", "--model", model, "--alignments"])
            .args(["--format", "jsonl", "Ein Hund läuft."]),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let pairs = v["alignment"].as_array().unwrap();
    assert!(!pairs.is_empty(), "{out}");
    for (t, p) in pairs.iter().enumerate() {
        assert_eq!(p[1].as_u64(), Some(t as u64), "{out}");
    }
    let plain = run_ok(nmt().args(["translate", "--model", model, "--alignments", "Ein Hund."]));
    let (_, links) = plain.trim_end().split_once(" ||| ").expect(&plain);
    assert!(
        links.split(' ').all(|l| l.split_once('-').is_some()),
        "{plain}"
    );

    let src = common::toy("valid.de");
    let tgt = common::toy("valid.en");
    let (src, tgt) = (src.to_str().unwrap(), tgt.to_str().unwrap());
    let scored = run_ok(
        nmt()
            .args(["score", "--model", model, "--src-file", src])
            .args(["--tgt-file", tgt]),
    );
    assert!(scored.lines().any(|l| l.starts_with("total")), "{scored}");

    let plain_dir = tmp.path().join("plain");
    run_ok(nmt().args(toy_attention_args(&plain_dir, &["--max-steps", "2"])));
    let o = nmt()
        .args(["translate", "--model", plain_dir.to_str().unwrap()])
        .args(["--alignments", "Ein Hund."])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(common::text(&o.stderr).contains("--alignments needs a model trained with --attention"));
}
