//! `c = [c +] a . b` for f32 matrix views: the entry point every product of the model goes
//! through. It picks the kernel by shape (the measured rule in each module's doc): `sgemm`
//! for a narrow `a` against a wide `b`, `row_gemm` for a tall `a` read in place, else the
//! `gemm` crate (the one Candle uses).

use super::matrix::MatRef;
use super::{row_gemm, sgemm};

/// `dst (m, n, row-major) = [dst +] a (m, k) . b (k, n)`.
pub fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, a: MatRef, b: MatRef) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    // SAFETY: dst holds m * n initialised floats and does not alias a or b (it is a
    // distinct &mut borrow).
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), accumulate, a, b) }
}

/// `a (m, k) . b (k, n)` as a new row-major `(m, n)` vector that the product writes once:
/// no zero fill first (for the (N, V) logits that pass alone is milliseconds a step).
pub fn gemm_new(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: the buffer has room for m * n floats; without `accumulate` the product only
    // writes it (the gemm crate stores without reading when it does not read dst, and
    // `gemm_raw` writes zeros for k = 0), so every element is set before `set_len`.
    unsafe {
        gemm_raw(m, n, k, out.as_mut_ptr(), false, a, b);
        out.set_len(m * n);
    }
    out
}

/// The product behind `gemm` and `gemm_new`.
///
/// Safety: `dst` is valid for writes (and reads when `accumulate`) of `m * n` floats, and
/// aliases neither `a` nor `b`.
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    accumulate: bool,
    a: MatRef,
    b: MatRef,
) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        assert!(a.fits(m, k) && b.fits(k, n), "gemm: operand out of bounds");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                std::ptr::write_bytes(dst, 0, m * n);
            }
            return;
        }
        if sgemm::suits(m, n, k) {
            // The logits' shape: a narrow `a` against a wide `b` (the module says why).
            sgemm::sgemm(m, n, k, dst, accumulate, a, b);
            return;
        }
        if row_gemm::suits(m, n, k, a) {
            // The output layer's dW and dh: a tall `a` read in place against a narrow `b`.
            row_gemm::sgemm_rows(m, n, k, dst, accumulate, a, b);
            return;
        }
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 && m * n * k >= 64 * 64 * 64 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // The assert above keeps every operand index inside its slice; the caller vouches for dst.
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_with_transposes() {
        let (m, n, k) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32).sin()).collect(); // (n, k)
        let mut dst = vec![1.0; m * n];
        gemm(
            m,
            n,
            k,
            &mut dst,
            true,
            MatRef::rows(&a, k),
            MatRef::transposed(&bt, k),
        );
        for r in 0..m {
            for c in 0..n {
                let want: f32 = 1.0 + (0..k).map(|i| a[r * k + i] * bt[c * k + i]).sum::<f32>();
                assert!((dst[r * n + c] - want).abs() < 1e-5);
            }
        }
        // A fresh product: the same values without the 1.0 added; k = 0 gives zeros.
        let fresh = gemm_new(m, n, k, MatRef::rows(&a, k), MatRef::transposed(&bt, k));
        for (f, d) in fresh.iter().zip(&dst) {
            assert!((f + 1.0 - d).abs() < 1e-5);
        }
        let empty = gemm_new(m, n, 0, MatRef::rows(&[], 0), MatRef::rows(&[], n));
        assert_eq!(empty, vec![0.0; m * n]);
    }
}
