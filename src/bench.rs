//! `nmt bench`: the model's real training step and decoders timed on random data, with the
//! flags and figures of shared/bench/pytorch_lstm_s2s.py, so the two compare line for line.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Var;
use serde_json::json;

use crate::config::{Attention, ModelConfig, OptimizerKind, SearchConfig, BOS_ID, EOS_ID};
use crate::data::batch::{Batch, Example};
use crate::error::{Error, Result};
use crate::inference::scorer::ModelScorer;
use crate::model::decode_step::DecodeWeights;
use crate::model::precision::Precision;
use crate::model::{params, Seq2Seq};
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::search::beam::beam_search;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    Train,
    DecodeGreedy,
    DecodeBeam,
    /// The round trip of a cache line between two threads: how far apart the cores are.
    CoreToCore,
}

/// The PyTorch script's flags, with its defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// train, decode-greedy, decode-beam, or core-to-core (the round trip of a cache line
    /// between two threads, `--steps` rounds of 20,000: ~60-80 ns on cores that share a die,
    /// several times that across dies).
    #[arg(value_enum)]
    pub mode: BenchMode,
    /// LSTM layers per side.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// LSTM cells per layer.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Embedding size.
    #[arg(long, default_value_t = 256)]
    pub emb: usize,
    /// Luong attention with input feeding (none: the paper's model).
    #[arg(long, value_enum, default_value_t = Attention::None)]
    pub attention: Attention,
    /// Source vocabulary size.
    #[arg(long, default_value_t = 8000)]
    pub src_vocab: usize,
    /// Target vocabulary size.
    #[arg(long, default_value_t = 8000)]
    pub tgt_vocab: usize,
    /// Sentences per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Source tokens per sentence.
    #[arg(long, default_value_t = 20)]
    pub src_len: usize,
    /// Target tokens per sentence (training).
    #[arg(long, default_value_t = 20)]
    pub tgt_len: usize,
    /// Timed steps (train), timed batches (decode) or rounds (core-to-core).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// SGD learning rate (training).
    #[arg(long, default_value_t = 0.7)]
    pub lr: f64,
    /// Beam width (decode-beam).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Longest output in decoding steps.
    #[arg(long, default_value_t = 30)]
    pub max_len: usize,
    /// Seed of weights and random data.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// cpu (the fused CPU step), cuda, cuda:N or metal (Candle ops and autograd, with the
    /// fused cell kernel on CUDA).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Products' precision on CUDA (as `nmt train --precision`): f32, tf32 or bf16; bf16
    /// applies to `train`, tf32 to every mode.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Free text stored in the JSON record.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Append one JSON object with the result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Random ids in [3, vocab) like the script's (padding, BOS and EOS never drawn).
fn random_ids(rng: &mut Rng, vocab: usize, len: usize) -> Vec<u32> {
    (0..len).map(|_| 3 + rng.below(vocab - 3) as u32).collect()
}

/// Round trips between two threads: `a.steps` rounds of this many each.
const TRIPS_PER_ROUND: usize = 20_000;

/// The core-to-core figure: the median over the rounds of each round's mean round trip.
fn core_to_core(a: &BenchArgs) -> (String, serde_json::Value) {
    let rounds: Vec<f64> = (0..a.steps)
        .map(|_| crate::core_latency::round_trip_ns(TRIPS_PER_ROUND))
        .collect();
    let med = median(&rounds);
    let summary = format!(
        "core-to-core: {med:.1} ns a round trip between two threads (median of {} rounds of {TRIPS_PER_ROUND})",
        a.steps
    );
    let record = json!({
        "label": a.label,
        "tool": "nmt",
        "mode": "CoreToCore",
        "result": { "round_trip_ns_median": med, "round_trip_ns": rounds },
    });
    (summary, record)
}

/// Runs the benchmark; returns the summary line and the JSON record.
pub fn run(a: &BenchArgs) -> Result<(String, serde_json::Value)> {
    if a.steps == 0 || a.src_vocab < 4 || a.tgt_vocab < 4 || a.tgt_len < 1 || a.src_len < 1 {
        return Err(Error::Config(
            "bench needs --steps >= 1, vocabularies >= 4 and lengths >= 1".into(),
        ));
    }
    if a.mode == BenchMode::CoreToCore {
        // No model: the figure describes the machine.
        return Ok(core_to_core(a));
    }
    let dev = crate::device::pick(&a.device)?;
    a.precision.apply(&dev)?;
    let cfg = ModelConfig {
        src_vocab: a.src_vocab,
        tgt_vocab: a.tgt_vocab,
        emb: a.emb,
        hidden: a.hidden,
        layers: a.layers,
        attention: a.attention,
        ..ModelConfig::default()
    };
    cfg.validate()?;
    let mut rng = Rng::new(a.seed + 1);
    let init = params::init_uniform(&cfg, a.seed, &dev)?;
    let started = Instant::now();
    let mut shape = format!(
        "L={} E={} H={} V={}/{} B={} S={}",
        a.layers, a.emb, a.hidden, a.src_vocab, a.tgt_vocab, a.batch, a.src_len
    );
    if a.attention.is_on() {
        shape.push_str(&format!(" attention={}", a.attention.name()));
    }
    if a.precision != Precision::F32 {
        shape.push_str(&format!(" precision={}", a.precision.name()));
    }
    let (summary, result) = match a.mode {
        BenchMode::Train => {
            let mut names: Vec<&String> = init.keys().collect();
            names.sort();
            let mut vars = Vec::new();
            let mut shared = std::collections::HashMap::new();
            for n in names {
                let v = Var::from_tensor(&init[n])?;
                shared.insert(n.clone(), v.as_tensor().clone());
                vars.push((n.clone(), v));
            }
            let model = Seq2Seq::from_tensors(&cfg, &shared)?.with_precision(a.precision);
            let mut opt = Optimizer::new(OptimizerKind::Sgd, vars, 5.0)?;
            // tgt_len target tokens per sentence: tgt_len - 1 words and EOS.
            let examples: Vec<Example> = (0..a.batch)
                .map(|_| Example {
                    src: random_ids(&mut rng, a.src_vocab, a.src_len),
                    tgt: random_ids(&mut rng, a.tgt_vocab, a.tgt_len - 1),
                })
                .collect();
            let refs: Vec<&Example> = examples.iter().collect();
            let batch = Batch::new(&refs, &cfg, &dev)?;
            let (mut times, mut losses) = (Vec::new(), Vec::new());
            // Per timed step: forward, backward, update (seconds).
            let mut phases: [Vec<f64>; 3] = Default::default();
            for step in 0..a.warmup + a.steps {
                let t0 = Instant::now();
                let n = batch.tgt_tokens as f64;
                let (loss, t1, t2) = if dev.is_cpu() {
                    let fwd = model.forward_cpu(&batch, None, 0.0, (1.0 / n) as f32)?;
                    let loss = fwd.loss / n;
                    let t1 = Instant::now();
                    let grads = fwd.backward()?;
                    let t2 = Instant::now();
                    opt.step_named(&grads, a.lr)?;
                    (loss, t1, t2)
                } else {
                    // The trainer's path off the CPU. Reading the loss waits for the device,
                    // so each phase's time includes its kernels.
                    let (sum, _) = model.forward_train(&batch, None, 0.0)?;
                    let mean = (sum / n)?;
                    let loss = mean.to_scalar::<f32>()? as f64;
                    let t1 = Instant::now();
                    let grads = mean.backward()?;
                    dev.synchronize()?;
                    let t2 = Instant::now();
                    opt.step(&grads, a.lr)?;
                    (loss, t1, t2)
                };
                dev.synchronize()?;
                let t3 = Instant::now();
                losses.push(loss);
                if step >= a.warmup {
                    times.push(t0.elapsed().as_secs_f64());
                    phases[0].push((t1 - t0).as_secs_f64());
                    phases[1].push((t2 - t1).as_secs_f64());
                    phases[2].push((t3 - t2).as_secs_f64());
                }
            }
            let med = median(&times);
            let n_tok = batch.tgt_tokens;
            let tok_s = n_tok as f64 / med;
            (
                format!(
                    "train {shape} T={} thr={}: {:.1} ms/step, {:.0} tgt tok/s, loss {:.3}->{:.3}",
                    a.tgt_len,
                    a.threads,
                    med * 1e3,
                    tok_s,
                    losses[0],
                    losses[losses.len() - 1]
                ),
                json!({
                    "ms_per_step_median": med * 1e3,
                    "ms_per_step_min": times.iter().copied().fold(f64::MAX, f64::min) * 1e3,
                    "ms_per_step_max": times.iter().copied().fold(0.0, f64::max) * 1e3,
                    "tgt_tok_per_s_median": tok_s,
                    "tgt_tokens_per_step": n_tok,
                    "ms_forward_median": median(&phases[0]) * 1e3,
                    "ms_backward_median": median(&phases[1]) * 1e3,
                    "ms_update_median": median(&phases[2]) * 1e3,
                    "loss_first": losses[0],
                    "loss_last": losses[losses.len() - 1],
                    "step_times_s": times,
                }),
            )
        }
        BenchMode::CoreToCore => unreachable!("core-to-core returns before a model is built"),
        BenchMode::DecodeGreedy | BenchMode::DecodeBeam => {
            let model = Seq2Seq::from_tensors(&cfg, &init)?;
            let beam = if a.mode == BenchMode::DecodeGreedy {
                1
            } else {
                a.beam
            };
            // max_output_len = ceil(ratio * S) + 1 = max_len steps.
            let search = SearchConfig {
                beam,
                max_len_ratio: (a.max_len.saturating_sub(1)).max(1) as f32 / a.src_len as f32,
                batch_size: a.batch,
                ..SearchConfig::default()
            };
            let fast = DecodeWeights::new(&model)?;
            let scorer = ModelScorer {
                fast: fast.as_ref(),
                ..ModelScorer::new(&model)
            };
            let mut times = Vec::new();
            for i in 0..a.warmup + a.steps {
                let sources: Vec<Vec<u32>> = (0..a.batch)
                    .map(|_| random_ids(&mut rng, a.src_vocab, a.src_len))
                    .collect();
                let refs: Vec<&[u32]> = sources.iter().map(|s| s.as_slice()).collect();
                let t0 = Instant::now();
                beam_search(&scorer, &refs, &search, BOS_ID, EOS_ID)?;
                dev.synchronize()?;
                if i >= a.warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let med = median(&times);
            let mode = if beam == 1 {
                "decode-greedy"
            } else {
                "decode-beam"
            };
            (
                format!(
                    "{mode} {shape} beam={beam} max_len={} thr={}: {:.2} sent/s, {:.1} ms/batch",
                    a.max_len,
                    a.threads,
                    a.batch as f64 / med,
                    med * 1e3
                ),
                json!({
                    "ms_per_batch_median": med * 1e3,
                    "ms_per_batch_min": times.iter().copied().fold(f64::MAX, f64::min) * 1e3,
                    "ms_per_batch_max": times.iter().copied().fold(0.0, f64::max) * 1e3,
                    "sent_per_s_median": a.batch as f64 / med,
                    "batch_times_s": times,
                }),
            )
        }
    };
    let record = json!({
        "label": a.label,
        "tool": "nmt",
        "mode": format!("{:?}", a.mode),
        "args": {
            "layers": a.layers, "hidden": a.hidden, "emb": a.emb, "src_vocab": a.src_vocab,
            "tgt_vocab": a.tgt_vocab, "batch": a.batch, "src_len": a.src_len, "tgt_len": a.tgt_len,
            "steps": a.steps, "warmup": a.warmup, "threads": a.threads, "beam": a.beam,
            "max_len": a.max_len, "seed": a.seed, "device": a.device,
        },
        "n_params": params::param_count(&cfg),
        "result": result,
        "wall_s": started.elapsed().as_secs_f64(),
    });
    Ok((summary, record))
}
