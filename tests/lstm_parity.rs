//! The fused LSTM op (forward + hand-written BPTT) and the step-by-step path with the fused
//! cell op (the CUDA path; here its CPU implementation) against the same math in plain Candle
//! ops: outputs, the loss and every gradient must agree.

mod common;

use candle_core::{Device, Tensor, Var};
use common::{rand_tensor, rel_err, small_cfg, trainable_model};
use nmt::data::batch::StepMask;
use nmt::data::batch::{Batch, Example};
use nmt::model::lstm::{LstmLayer, LstmPath};
use nmt::model::precision::Precision;
use nmt::rng::Rng;

const TOL: f32 = 2e-5;

struct Case {
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    lengths: Option<Vec<usize>>,
}

fn layer_case(case: &Case, seed: u64) {
    // Buffers the op reuses are NaN until written: an element left unwritten shows.
    nmt::kernels::scratch::poison();
    let mut rng = Rng::new(seed);
    let dev = Device::Cpu;
    let var = |rng: &mut Rng, shape: &[usize], s: f32| {
        Var::from_tensor(&rand_tensor(rng, shape, s)).unwrap()
    };
    let w_ih = var(&mut rng, &[4 * case.h, case.i], 0.5);
    let w_hh = var(&mut rng, &[4 * case.h, case.h], 0.5);
    let b_ih = var(&mut rng, &[4 * case.h], 0.5);
    let b_hh = var(&mut rng, &[4 * case.h], 0.5);
    let x = var(&mut rng, &[case.t, case.b, case.i], 1.0);
    let h0 = var(&mut rng, &[case.b, case.h], 0.5);
    let c0 = var(&mut rng, &[case.b, case.h], 0.5);
    // Random read-out weights make every output position matter to the loss.
    let r_h = rand_tensor(&mut rng, &[case.t, case.b, case.h], 1.0);
    let r_c = rand_tensor(&mut rng, &[case.b, case.h], 1.0);
    let mask = case.lengths.as_ref().map(|lens| {
        let mut flags = vec![0f32; case.t * case.b];
        for (b, &len) in lens.iter().enumerate() {
            for t in case.t - len..case.t {
                flags[t * case.b + b] = 1.0;
            }
        }
        StepMask::new(flags, case.t, case.b, &dev).unwrap()
    });
    let layer = LstmLayer {
        weight_ih: w_ih.as_tensor().clone(),
        weight_hh: w_hh.as_tensor().clone(),
        bias_ih: b_ih.as_tensor().clone(),
        bias_hh: b_hh.as_tensor().clone(),
    };
    let run = |path| {
        let (hs, c_last) = layer
            .forward(
                x.as_tensor(),
                h0.as_tensor(),
                c0.as_tensor(),
                mask.as_ref(),
                path,
                Precision::F32,
            )
            .unwrap();
        let loss = ((&hs * &r_h).unwrap().sum_all().unwrap()
            + (&c_last * &r_c).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Tensor> = [&w_ih, &w_hh, &b_ih, &b_hh, &x, &h0, &c0]
            .iter()
            .map(|v| {
                grads
                    .get(v.as_tensor())
                    .expect("every input gets a gradient")
                    .clone()
            })
            .collect();
        (hs, c_last, loss, g)
    };
    let (hs_r, cs_r, loss_r, g_r) = run(LstmPath::Reference);
    for path in [LstmPath::Fused, LstmPath::Cell] {
        let (hs_f, cs_f, loss_f, g_f) = run(path);
        assert!(
            rel_err(&hs_f, &hs_r) < TOL,
            "{path:?}: h differs: {}",
            rel_err(&hs_f, &hs_r)
        );
        assert!(
            rel_err(&cs_f, &cs_r) < TOL,
            "{path:?}: last c differs: {}",
            rel_err(&cs_f, &cs_r)
        );
        assert!(rel_err(&loss_f, &loss_r) < TOL, "{path:?}: loss differs");
        let names = [
            "weight_ih",
            "weight_hh",
            "bias_ih",
            "bias_hh",
            "x",
            "h0",
            "c0",
        ];
        for ((name, a), b) in names.iter().zip(&g_f).zip(&g_r) {
            let e = rel_err(a, b);
            assert!(
                e < TOL,
                "{path:?}: gradient of {name} differs: relative error {e}"
            );
        }
    }
}

#[test]
fn fused_layer_matches_reference_without_padding() {
    layer_case(
        &Case {
            t: 5,
            b: 3,
            i: 4,
            h: 6,
            lengths: None,
        },
        1,
    );
    layer_case(
        &Case {
            t: 1,
            b: 1,
            i: 3,
            h: 2,
            lengths: None,
        },
        2,
    );
    layer_case(
        &Case {
            t: 9,
            b: 7,
            i: 16,
            h: 32,
            lengths: None,
        },
        3,
    );
}

#[test]
fn fused_layer_matches_reference_with_padding() {
    layer_case(
        &Case {
            t: 6,
            b: 4,
            i: 5,
            h: 7,
            lengths: Some(vec![6, 1, 3, 5]),
        },
        4,
    );
    layer_case(
        &Case {
            t: 12,
            b: 5,
            i: 8,
            h: 16,
            lengths: Some(vec![2, 12, 7, 1, 9]),
        },
        5,
    );
    // Batches of 6 or more take the packed recurrent product.
    layer_case(
        &Case {
            t: 7,
            b: 8,
            i: 6,
            h: 20,
            lengths: Some(vec![7, 3, 1, 7, 5, 2, 6, 4]),
        },
        6,
    );
}

#[test]
fn whole_model_loss_and_every_gradient_match_reference() {
    for (layers, seed) in [(1, 11), (3, 12)] {
        let cfg = small_cfg(layers, 23, 8, 12);
        let (model, vars) = trainable_model(&cfg, seed);
        let mut rng = Rng::new(seed);
        let examples: Vec<Example> = (0..5)
            .map(|k| Example {
                src: (0..1 + k * 2).map(|_| 4 + rng.below(19) as u32).collect(),
                tgt: (0..1 + (k * 3) % 7)
                    .map(|_| 4 + rng.below(22) as u32)
                    .collect(),
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let batch = Batch::new(&refs, &cfg, &Device::Cpu).unwrap();
        let run = |path| {
            let m = model.clone().with_path(path);
            let (nll, _) = m.forward_teacher(&batch).unwrap();
            let grads = nll.backward().unwrap();
            (nll, grads)
        };
        // The training path on the CPU: the fused LSTM ops and the output layer + loss op.
        // Backward runs twice over its graph; the second pass recomputes what the ops kept.
        let train = || {
            let (loss, _) = model.forward_train(&batch, None, 0.0).unwrap();
            let once = loss.backward().unwrap();
            let twice = loss.backward().unwrap();
            (loss, once, twice)
        };
        let (loss_t, g_t, g_t2) = train();
        let (loss_f, g_f) = run(LstmPath::Fused);
        let (loss_c, g_c) = run(LstmPath::Cell);
        let (loss_r, g_r) = run(LstmPath::Reference);
        assert!(rel_err(&loss_f, &loss_r) < TOL, "loss differs");
        assert!(rel_err(&loss_c, &loss_r) < TOL, "cell-op loss differs");
        assert!(rel_err(&loss_t, &loss_r) < TOL, "training loss differs");
        for (name, v) in &vars {
            let b = g_r.get(v.as_tensor()).unwrap();
            for (path, g) in [
                ("fused", &g_f),
                ("cell op", &g_c),
                ("training", &g_t),
                ("second backward", &g_t2),
            ] {
                let a = g
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{path}: no gradient for {name}"));
                let e = rel_err(a, b);
                assert!(
                    e < TOL,
                    "{layers} layers, {path}: gradient of {name} differs: relative error {e}"
                );
            }
        }
    }
}
