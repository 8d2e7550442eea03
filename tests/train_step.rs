//! The CPU training step (its own backward pass, `model::train_step`) against Candle's autograd
//! over the reference graph: loss, NLL and every parameter's gradient must agree, with
//! padded sources, dropout, label smoothing and a loss scale; with and without attention.

mod common;

use candle_core::{Device, Tensor};
use common::{rel_err, small_cfg, trainable_model};
use nmt::config::{Attention, ModelConfig};
use nmt::data::batch::{Batch, Example};
use nmt::model::dropout::Dropout;
use nmt::model::lstm::LstmPath;
use nmt::rng::Rng;

const TOL: f32 = 2e-5;

#[test]
fn cpu_step_matches_autograd() {
    // Buffers the step reuses are NaN until written: an element left unwritten shows.
    nmt::kernels::scratch::poison();
    let runs = [(1, 21, 0.0, 0.0), (3, 22, 0.3, 0.1), (2, 23, 0.5, 0.0)];
    let kinds = [Attention::None, Attention::Dot, Attention::General];
    for (attention, (layers, seed, p, smoothing)) in kinds
        .into_iter()
        .flat_map(|a| runs.into_iter().map(move |r| (a, r)))
    {
        let cfg = ModelConfig {
            attention,
            ..small_cfg(layers, 23, 8, 12)
        };
        let (model, vars) = trainable_model(&cfg, seed);
        let mut rng = Rng::new(seed);
        // Sources of different lengths (padding inside the encoder), targets too.
        let examples: Vec<Example> = (0..7)
            .map(|k| Example {
                src: (0..1 + (k * 2) % 9)
                    .map(|_| 4 + rng.below(19) as u32)
                    .collect(),
                tgt: (0..1 + (k * 3) % 7)
                    .map(|_| 4 + rng.below(19) as u32)
                    .collect(),
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let batch = Batch::new(&refs, &cfg, &Device::Cpu).unwrap();
        let scale = 1.0 / batch.tgt_tokens as f32;
        let dropout = || Dropout {
            rng: Rng::new(seed + 100),
            p,
        };

        let (mut d1, mut d2) = (dropout(), dropout());
        let reference = model.clone().with_path(LstmPath::Reference);
        let (loss_r, nll_r) = reference
            .forward_train(&batch, Some(&mut d1), smoothing)
            .unwrap();
        let grads_r = (&loss_r * scale as f64).unwrap().backward().unwrap();
        let fwd = model
            .forward_cpu(&batch, Some(&mut d2), smoothing, scale)
            .unwrap();
        let (loss_c, nll_c) = (fwd.loss, fwd.nll);
        let grads_c = fwd.backward().unwrap();

        let close = |a: f64, b: f32| (a as f32 - b).abs() <= 1e-4 * (1.0 + b.abs());
        assert!(
            close(loss_c, loss_r.to_scalar::<f32>().unwrap()),
            "loss differs"
        );
        assert!(
            close(nll_c, nll_r.to_scalar::<f32>().unwrap()),
            "NLL differs"
        );
        // Both paths drew the same masks from the same generator, and no more.
        assert_eq!(d1.rng.state(), d2.rng.state(), "dropout draws differ");
        assert_eq!(grads_c.len(), vars.len(), "one gradient per parameter");
        for (name, v) in &vars {
            let want = grads_r.get(v.as_tensor()).unwrap();
            let got: Tensor = grads_c
                .get(name)
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .to_dense(v.as_tensor())
                .unwrap();
            assert_eq!(got.dims(), want.dims(), "{name}: shape");
            let e = rel_err(&got, want);
            assert!(
                e < TOL,
                "{attention:?}, {layers} layers, p {p}: gradient of {name} differs: relative error {e}"
            );
        }
    }
}

/// A target outside the output vocabulary is a clear error, not a panic.
#[test]
fn cpu_step_rejects_ids_outside_the_vocabulary() {
    let cfg = small_cfg(1, 23, 8, 12);
    let (model, _) = trainable_model(&cfg, 5);
    let bad = [Example {
        src: vec![5, 6],
        tgt: vec![7, 40],
    }];
    let refs: Vec<&Example> = bad.iter().collect();
    let batch = Batch::new(&refs, &cfg, &Device::Cpu).unwrap();
    let err = model
        .forward_cpu(&batch, None, 0.0, 1.0)
        .err()
        .expect("an error");
    assert!(err.to_string().contains("40"), "{err}");
}
