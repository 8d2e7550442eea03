//! Small CPU building blocks for the fused LSTM op: a safe-ish gemm wrapper over the `gemm`
//! crate (the one Candle uses) and the gate nonlinearities.

use candle_core::{CpuStorage, Layout, Storage};

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

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m, n, row-major) = [dst +] a (m, k) . b (k, n)`.
pub fn gemm(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, a: MatRef, b: MatRef) {
    assert!(dst.len() >= m * n, "gemm: destination too small");
    assert!(a.fits(m, k) && b.fits(k, n), "gemm: operand out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 && m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices;
    // dst does not alias a or b (it is a distinct &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// tanh through one exp (libm's tanhf was a measured ~12 % of a training step).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // For |x| > 9, tanh is 1 to f32 precision; clamping also keeps exp finite.
    let x = x.clamp(-9.0, 9.0);
    let e = (2.0 * x).exp();
    (e - 1.0) / (e + 1.0)
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
    }

    #[test]
    fn activations_match_std() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-7);
        }
    }
}
