//! Small CPU building blocks for the fused ops: a safe-ish gemm wrapper over the `gemm` crate
//! (the one Candle uses), the LSTM cell of one row, and access to a tensor's f32 storage.

use candle_core::{CpuStorage, Layout, Storage};
use rayon::prelude::*;

use super::vexp::{sigmoid_in_place, tanh_in_place};
use crate::error::{Error, Result};

/// A read-only matrix view: element (r, c) lives at `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major (rows, cols) matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// Whether every element of a `(rows, cols)` view lies inside `data`.
    pub fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

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
    if super::sgemm::suits(m, n, k) {
        // The logits' shape: a narrow `a` against a wide `b` (the module says why).
        super::sgemm::sgemm(m, n, k, dst, accumulate, a, b);
        return;
    }
    if super::row_gemm::suits(m, n, k, a) {
        // The output layer's dW and dh: a tall `a` read in place against a narrow `b`.
        super::row_gemm::sgemm_rows(m, n, k, dst, accumulate, a, b);
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

/// The column sums of a row-major `(rows, cols)` matrix, `(cols)`: blocks of columns in
/// parallel, each read row by row (contiguous runs, one pass over the data in all).
pub fn column_sums(data: &[f32], cols: usize) -> Vec<f32> {
    const BLOCK: usize = 256;
    let mut out = vec![0f32; cols];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(k, sums)| {
        let span = k * BLOCK..k * BLOCK + sums.len();
        for row in data.chunks_exact(cols) {
            for (s, v) in sums.iter_mut().zip(&row[span.clone()]) {
                *s += v;
            }
        }
    });
    out
}

/// One LSTM cell for one row: activates `gates` `(4H)` in place (i, f, o sigmoid, g tanh)
/// and writes `c = f * c_prev + i * g` and `h = o * tanh(c)`.
pub fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hidden = c.len();
    let (ifg, o) = gates.split_at_mut(3 * hidden);
    sigmoid_in_place(&mut ifg[..2 * hidden]);
    tanh_in_place(&mut ifg[2 * hidden..]);
    sigmoid_in_place(o);
    for j in 0..hidden {
        c[j] = ifg[hidden + j] * c_prev[j] + ifg[j] * ifg[2 * hidden + j];
    }
    h.copy_from_slice(c);
    tanh_in_place(h);
    h.iter_mut().zip(o.iter()).for_each(|(x, o)| *x *= o);
}

/// The f32 data of a contiguous CPU storage.
pub fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        return Err(Error::Config(format!(
            "{what}: the LSTM op needs f32 tensors"
        )));
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(Error::Config(format!(
            "{what}: the LSTM op needs a contiguous tensor"
        ))),
    }
}

/// The f32 data of a contiguous tensor's storage, when it lives on the CPU.
pub fn storage_f32<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => cpu_f32(cpu, layout, what),
        _ => Err(Error::Config(format!(
            "{what}: the fused LSTM op runs on the CPU only"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_sums_match_naive() {
        for (rows, cols) in [(3, 700), (45, 33), (1, 1), (0, 5)] {
            let a: Vec<f32> = (0..rows * cols).map(|i| (i % 17) as f32).collect();
            let sums = column_sums(&a, cols);
            for (c, s) in sums.iter().enumerate() {
                let want: f32 = (0..rows).map(|r| a[r * cols + c]).sum();
                assert_eq!(*s, want, "({rows}, {cols}) column {c}");
            }
        }
    }

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
