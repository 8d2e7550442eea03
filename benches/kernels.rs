//! `cargo bench --bench kernels` (or `make bench-kernels`): GFLOP/s of the kernels module's
//! products at the shapes the model gives them, each against the definition's result first.
//! The model-level comparison with PyTorch is `make bench`; this one shows which kernel moved.

use std::time::Instant;

use nmt::kernels::{gemm_new, matmul_wt, MatRef, PackedWt};

fn values(len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * scale).sin()).collect()
}

/// The median seconds of `runs` calls of `f` after one warm-up call.
fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// Element (r, c) of `a (m, k) . b (k, n)` by the definition, in f64.
fn at(a: MatRef, b: MatRef, k: usize, r: usize, c: usize) -> f32 {
    (0..k)
        .map(|p| a.data[r * a.rs + p * a.cs] as f64 * b.data[p * b.rs + c * b.cs] as f64)
        .sum::<f64>() as f32
}

fn check(name: &str, got: &[f32], n: usize, want: impl Fn(usize, usize) -> f32) {
    for (r, c) in [(0, 0), (1, n - 1), (got.len() / n - 1, n / 2)] {
        let (g, w) = (got[r * n + c], want(r, c));
        assert!(
            (g - w).abs() <= 1e-3 * (1.0 + w.abs()),
            "{name}: ({r}, {c}) {g} vs {w}"
        );
    }
}

fn report(name: &str, flops: f64, secs: f64) {
    println!(
        "{name:<48} {:>8.2} ms {:>8.1} GFLOP/s",
        secs * 1e3,
        flops / secs / 1e9
    );
}

fn main() {
    rayon::ThreadPoolBuilder::new().build_global().ok();
    println!("threads: {}", rayon::current_num_threads());
    // (name, m, n, k, a transposed?, b transposed?)
    let products = [
        (
            "logits h . W^T (640x512 . 512x16000)",
            640,
            16000,
            512,
            false,
            true,
        ),
        (
            "output dW dlogits^T . h (16000x640 . 640x512)",
            16000,
            512,
            640,
            true,
            false,
        ),
        (
            "LSTM dx dG . W_ih (1280x2048 . 2048x512)",
            1280,
            512,
            2048,
            false,
            false,
        ),
    ];
    for (name, m, n, k, ta, tb) in products {
        let (a, b) = (values(m * k, 0.37), values(k * n, 0.11));
        let av = if ta {
            MatRef::transposed(&a, m)
        } else {
            MatRef::rows(&a, k)
        };
        let bv = if tb {
            MatRef::transposed(&b, k)
        } else {
            MatRef::rows(&b, n)
        };
        check(name, &gemm_new(m, n, k, av, bv), n, |r, c| {
            at(av, bv, k, r, c)
        });
        let secs = median_secs(9, || {
            std::hint::black_box(gemm_new(m, n, k, av, bv));
        });
        report(name, 2.0 * (m * n * k) as f64, secs);
    }
    // Search: a beam-5 batch-32 decoder step's LSTM product, [x | h] . [W_ih | W_hh]^T.
    let (rows, n, k) = (160, 1024, 512);
    let (x, w) = (values(rows * k, 0.3), values(n * k, 0.7));
    let packed = PackedWt::new(&w, n, k);
    let want = |r: usize, c: usize| at(MatRef::rows(&x, k), MatRef::transposed(&w, k), k, r, c);
    let mut out = vec![0f32; rows * n];
    packed.matmul((&x, &[]), rows, None, &mut out, false);
    check("packed", &out, n, want);
    let secs = median_secs(51, || packed.matmul((&x, &[]), rows, None, &mut out, false));
    report(
        "decode packed x . W^T (160x512 . 512x1024)",
        2.0 * (rows * n * k) as f64,
        secs,
    );
    let few = 5;
    let mut out = vec![0f32; few * n];
    matmul_wt(&x[..few * k], few, &w, n, None, &mut out, false);
    check("rowdot", &out, n, want);
    let secs = median_secs(51, || {
        matmul_wt(&x[..few * k], few, &w, n, None, &mut out, false)
    });
    report(
        "decode rowdot x . W^T (5x512 . 512x1024)",
        2.0 * (few * n * k) as f64,
        secs,
    );
}
