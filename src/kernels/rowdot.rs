//! `x . wᵀ` for a few rows of `x` against a row-major weight matrix `w`, reading each weight
//! row once. A general gemm packs `w` on every call; in a beam-search step, with 1-160 rows,
//! that packing was ~70 % of the time (perf, beam 5 at batch 1).

use rayon::prelude::*;

/// Weight rows per parallel task.
const BLOCK: usize = 64;

/// `out (m, n) = [out +] x (m, k) . w (n, k)ᵀ [+ bias (n)]`, all row-major. Column blocks
/// run in parallel when the product is large enough to pay for it.
pub fn matmul_wt(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
    accumulate: bool,
) {
    let k = x.len().checked_div(m).unwrap_or(0);
    assert!(
        x.len() == m * k && w.len() == n * k,
        "matmul_wt: shapes do not match"
    );
    assert!(out.len() == m * n, "matmul_wt: output has the wrong size");
    assert!(
        bias.is_none_or(|b| b.len() == n),
        "matmul_wt: bias has the wrong size"
    );
    if m == 0 || n == 0 {
        return;
    }
    // Every task gets its own column range of every output row: disjoint borrows.
    let block = if m * n * k < 1 << 17 { n } else { BLOCK };
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..n.div_ceil(block))
        .map(|_| Vec::with_capacity(m))
        .collect();
    for row in out.chunks_mut(n) {
        for (b, piece) in row.chunks_mut(block).enumerate() {
            pieces[b].push(piece);
        }
    }
    let task = |(b, mut rows): (usize, Vec<&mut [f32]>)| {
        let (lo, hi) = (b * block, ((b + 1) * block).min(n));
        columns(x, m, k, w, lo, hi, &mut rows, accumulate);
        if let Some(bias) = bias {
            for row in rows.iter_mut() {
                row.iter_mut().zip(&bias[lo..hi]).for_each(|(d, b)| *d += b);
            }
        }
    };
    if pieces.len() == 1 {
        pieces.into_iter().enumerate().for_each(task);
    } else {
        pieces.into_par_iter().enumerate().for_each(task);
    }
}

/// Columns `lo..hi` of `x . wᵀ` into `dst`, one `hi - lo` slice per row of `x`.
#[allow(clippy::too_many_arguments)]
fn columns(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    lo: usize,
    hi: usize,
    dst: &mut [&mut [f32]],
    acc: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { avx::columns(x, m, k, w, lo, hi, dst, acc) };
        return;
    }
    for r in 0..m {
        for c in lo..hi {
            let (xr, wr) = (&x[r * k..(r + 1) * k], &w[c * k..(c + 1) * k]);
            let v: f32 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
            put(&mut dst[r][c - lo..c - lo + 1], &[v], acc);
        }
    }
}

/// `slot = vals`, or `slot += vals` when accumulating.
#[inline(always)]
fn put(slot: &mut [f32], vals: &[f32], acc: bool) {
    if acc {
        slot.iter_mut().zip(vals).for_each(|(s, v)| *s += v);
    } else {
        slot.copy_from_slice(vals);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Tiles of 3 x-rows by 4 w-rows keep 12 eight-lane accumulators in registers.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn columns(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[f32],
        lo: usize,
        hi: usize,
        dst: &mut [&mut [f32]],
        acc: bool,
    ) {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let xr = |r: usize| &x[r * k..(r + 1) * k];
            let wr = |c: usize| &w[c * k..(c + 1) * k];
            // Weight rows are taken in slices of about 16 KiB, which stay in L1 while every
            // x-row passes over them.
            let slice = (16384 / (4 * k.max(1)) / 4 * 4).max(4);
            let mut s = lo;
            while s < hi {
                let s_end = (s + slice).min(hi);
                let mut r = 0;
                while r < m {
                    let rows = (m - r).min(3);
                    let mut c = s;
                    while c < s_end {
                        let cols = (s_end - c).min(4);
                        if rows == 3 && cols == 4 {
                            let t = tile::<3, 4>(
                                [xr(r), xr(r + 1), xr(r + 2)],
                                [wr(c), wr(c + 1), wr(c + 2), wr(c + 3)],
                            );
                            for (i, row) in t.iter().enumerate() {
                                super::put(&mut dst[r + i][c - lo..][..4], row, acc);
                            }
                        } else if cols == 4 {
                            for i in 0..rows {
                                let t = tile::<1, 4>(
                                    [xr(r + i)],
                                    [wr(c), wr(c + 1), wr(c + 2), wr(c + 3)],
                                );
                                super::put(&mut dst[r + i][c - lo..][..4], &t[0], acc);
                            }
                        } else {
                            for i in 0..rows {
                                for j in 0..cols {
                                    let v = tile::<1, 1>([xr(r + i)], [wr(c + j)])[0][0];
                                    super::put(
                                        &mut dst[r + i][c + j - lo..c + j - lo + 1],
                                        &[v],
                                        acc,
                                    );
                                }
                            }
                        }
                        c += cols;
                    }
                    r += rows;
                }
                s = s_end;
            }
        }
    }

    /// Dot products of `R` x-rows with `C` w-rows (all of one length), eight lanes at a time.
    /// The accumulators are named locals: kept in an array, they were stored to the stack on
    /// every iteration, which halved the speed.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; every row of `w` and `x` is at least `x[0].len()` long.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const R: usize, const C: usize>(
        x: [&[f32]; R],
        w: [&[f32]; C],
    ) -> [[f32; C]; R] {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let k = x[0].len();
            let whole = k - k % 8;
            let mut out = [[0f32; C]; R];
            if R == 3 && C == 4 {
                let (x0, x1, x2) = (x[0].as_ptr(), x[1].as_ptr(), x[2].as_ptr());
                let (w0, w1, w2, w3) = (w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr());
                let z = _mm256_setzero_ps();
                let (mut a00, mut a01, mut a02, mut a03) = (z, z, z, z);
                let (mut a10, mut a11, mut a12, mut a13) = (z, z, z, z);
                let (mut a20, mut a21, mut a22, mut a23) = (z, z, z, z);
                let mut o = 0;
                // SAFETY: o + 8 <= whole <= k, the length of every row.
                while o < whole {
                    let (v0, v1, v2) = (
                        _mm256_loadu_ps(x0.add(o)),
                        _mm256_loadu_ps(x1.add(o)),
                        _mm256_loadu_ps(x2.add(o)),
                    );
                    let u = _mm256_loadu_ps(w0.add(o));
                    a00 = _mm256_fmadd_ps(v0, u, a00);
                    a10 = _mm256_fmadd_ps(v1, u, a10);
                    a20 = _mm256_fmadd_ps(v2, u, a20);
                    let u = _mm256_loadu_ps(w1.add(o));
                    a01 = _mm256_fmadd_ps(v0, u, a01);
                    a11 = _mm256_fmadd_ps(v1, u, a11);
                    a21 = _mm256_fmadd_ps(v2, u, a21);
                    let u = _mm256_loadu_ps(w2.add(o));
                    a02 = _mm256_fmadd_ps(v0, u, a02);
                    a12 = _mm256_fmadd_ps(v1, u, a12);
                    a22 = _mm256_fmadd_ps(v2, u, a22);
                    let u = _mm256_loadu_ps(w3.add(o));
                    a03 = _mm256_fmadd_ps(v0, u, a03);
                    a13 = _mm256_fmadd_ps(v1, u, a13);
                    a23 = _mm256_fmadd_ps(v2, u, a23);
                    o += 8;
                }
                let acc = [
                    [a00, a01, a02, a03],
                    [a10, a11, a12, a13],
                    [a20, a21, a22, a23],
                ];
                for r in 0..R {
                    for c in 0..C {
                        out[r][c] = hsum(acc[r][c]);
                    }
                }
            } else if R == 1 && C == 4 {
                let x0 = x[0].as_ptr();
                let (w0, w1, w2, w3) = (w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr());
                let z = _mm256_setzero_ps();
                let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
                let mut o = 0;
                // SAFETY: as above.
                while o < whole {
                    let v = _mm256_loadu_ps(x0.add(o));
                    a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w0.add(o)), a0);
                    a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w1.add(o)), a1);
                    a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w2.add(o)), a2);
                    a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w3.add(o)), a3);
                    o += 8;
                }
                let acc = [a0, a1, a2, a3];
                for c in 0..C {
                    out[0][c] = hsum(acc[c]);
                }
            } else {
                for r in 0..R {
                    for c in 0..C {
                        let (xp, wp) = (x[r].as_ptr(), w[c].as_ptr());
                        let mut a = _mm256_setzero_ps();
                        let mut o = 0;
                        // SAFETY: as above.
                        while o < whole {
                            a = _mm256_fmadd_ps(
                                _mm256_loadu_ps(xp.add(o)),
                                _mm256_loadu_ps(wp.add(o)),
                                a,
                            );
                            o += 8;
                        }
                        out[r][c] = hsum(a);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    for i in whole..k {
                        out[r][c] += x[r][i] * w[c][i];
                    }
                }
            }
            out
        }
    }

    /// The sum of the eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(a: __m256) -> f32 {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), a);
            ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
                + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `x (m, k) . w (n, k)ᵀ + bias`, summed in f64: the reference for the fast kernels.
    pub(crate) fn naive(
        x: &[f32],
        (m, n, k): (usize, usize, usize),
        w: &[f32],
        bias: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let dot: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                    .sum();
                out[r * n + c] = dot as f32 + bias[c];
            }
        }
        out
    }

    /// Deterministic `x (m, k)`, `w (n, k)` and `bias (n)` for kernel tests.
    pub(crate) fn case(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let w = (0..n * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 60.0)
            .collect();
        let b = (0..n).map(|i| i as f32 * 0.01).collect();
        (x, w, b)
    }

    #[test]
    fn matches_naive_for_every_tile_edge() {
        // Row counts around the 3-row tile, column counts around the 4-column tile and the
        // 64-column block, depths with and without an 8-lane tail, small and parallel sizes.
        for &(m, n, k) in &[
            (1, 1, 1),
            (2, 5, 7),
            (3, 4, 8),
            (4, 9, 13),
            (5, 130, 256),
            (7, 67, 33),
            (160, 300, 256),
        ] {
            let (x, w, b) = case(m, n, k);
            let mut out = vec![f32::NAN; m * n];
            matmul_wt(&x, m, &w, n, Some(&b), &mut out, false);
            let want = naive(&x, (m, n, k), &w, &b);
            for (i, (a, e)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "m={m} n={n} k={k} at {i}: {a} vs {e}"
                );
            }
        }
    }
}
