//! The 12 x 32 AVX-512 register tile and the packing around it, shared by the products that
//! run it (`sgemm`, `row_gemm`, `weight_grad`): a tile of `c` lives in 24 registers for a
//! whole depth block (up to `KC`), so `c` is written once per block.

use super::matrix::MatRef;

/// Rows of a register tile: each step broadcasts one element of 12 rows of `a`.
pub(crate) const MR: usize = 12;
/// Columns of a register tile: two 16-lane registers of `b`.
pub(crate) const NR: usize = 32;
/// Deepest block: a panel of `a` (12 x 512 floats, 24 KiB) stays in L1.
pub(crate) const KC: usize = 512;
/// Whether this CPU runs the AVX-512 tile.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The output pointer, shared by the tasks: each writes only its own columns.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: tasks write disjoint column blocks of `c` and nothing reads them meanwhile.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `SendPtr`).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows `i0..i0 + 12` of `a`, depth `p0..p0 + kc`, as `(kc, 12)`; zeros past row `m`.
pub(crate) fn pack_a(a: MatRef, m: usize, i0: usize, p0: usize, kc: usize, out: &mut [f32]) {
    let rows = MR.min(m - i0);
    if a.rs == 1 {
        for p in 0..kc {
            let from = i0 + (p0 + p) * a.cs;
            out[p * MR..p * MR + rows].copy_from_slice(&a.data[from..from + rows]);
            out[p * MR + rows..(p + 1) * MR].fill(0.0);
        }
    } else if a.cs == 1 && rows == MR {
        // A transpose of 12 contiguous rows: read each row along its unit stride.
        let src: [&[f32]; MR] = std::array::from_fn(|r| &a.data[(i0 + r) * a.rs + p0..][..kc]);
        for (p, slot) in out[..kc * MR].chunks_exact_mut(MR).enumerate() {
            for (s, row) in slot.iter_mut().zip(&src) {
                // SAFETY: every row slice above is kc long.
                *s = unsafe { *row.get_unchecked(p) };
            }
        }
    } else {
        for r in 0..MR {
            for p in 0..kc {
                out[p * MR + r] = if r < rows {
                    a.data[(i0 + r) * a.rs + (p0 + p) * a.cs]
                } else {
                    0.0
                };
            }
        }
    }
}

/// Columns `j0..j0 + 32` of `b`, depth `p0..p0 + kc`, as `(kc, 32)`; zeros past column `n`.
pub(crate) fn pack_b(b: MatRef, n: usize, p0: usize, kc: usize, j0: usize, out: &mut [f32]) {
    let cols = NR.min(n - j0);
    if b.cs == 1 {
        for p in 0..kc {
            let from = (p0 + p) * b.rs + j0;
            out[p * NR..p * NR + cols].copy_from_slice(&b.data[from..from + cols]);
            out[p * NR + cols..(p + 1) * NR].fill(0.0);
        }
    } else {
        for j in 0..NR {
            if j < cols {
                let col = &b.data[(j0 + j) * b.cs..];
                for p in 0..kc {
                    out[p * NR + j] = col[(p0 + p) * b.rs];
                }
            } else {
                for p in 0..kc {
                    out[p * NR + j] = 0.0;
                }
            }
        }
    }
}

/// One 12 x 32 tile of `c` at `(i0, j0)`, through a scratch tile where it crosses `m` or `n`.
///
/// Safety: `c` is a row-major `(m, n)` matrix valid for reads and writes, AVX-512F present.
pub(crate) unsafe fn tile(
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    c: *mut f32,
    (m, n): (usize, usize),
    (i0, j0): (usize, usize),
    acc: bool,
) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        assert!(ap.len() >= kc * MR && bp.len() >= kc * NR);
        let run = |c: *mut f32, ldc: usize, acc: bool| kernel(kc, ap, bp, c, ldc, acc);
        tile_edges(run, c, (m, n), (i0, j0), acc);
    }
}

/// `tile` for rows `i0..i0 + 12` (all inside `a`), depth `p0..p0 + kc` of `a` read where
/// it lies, when one of its strides is 1: no packed copy of `a`.
///
/// Safety: as `tile`; `a.fits(i0 + 12, p0 + kc)`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_in_place(
    kc: usize,
    a: MatRef,
    p0: usize,
    bp: &[f32],
    c: *mut f32,
    (m, n): (usize, usize),
    (i0, j0): (usize, usize),
    acc: bool,
) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        assert!(a.fits(i0 + MR, p0 + kc) && bp.len() >= kc * NR && kc > 0);
        let from = a.data.as_ptr().add(i0 * a.rs + p0 * a.cs);
        let run = |c: *mut f32, ldc: usize, acc: bool| {
            #[cfg(target_arch = "x86_64")]
            if a.cs == 1 {
                avx512::tile12x32_rows(kc, from, a.rs, bp.as_ptr(), c, ldc, acc);
            } else {
                assert_eq!(a.rs, 1, "tile_in_place: a has no unit stride");
                avx512::tile12x32_depth(kc, from, a.cs, bp.as_ptr(), c, ldc, acc);
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("tile::tile_in_place without AVX-512 ({from:?}, {c:?}, {ldc}, {acc})");
        };
        tile_edges(run, c, (m, n), (i0, j0), acc);
    }
}

/// Runs `run(c, ldc, acc)` for the tile at `(i0, j0)`: on `c` itself when the whole tile
/// lies inside `(m, n)`, else on a scratch tile copied in (when adding) and back.
///
/// Safety: `c` is a row-major `(m, n)` matrix valid for reads and writes.
unsafe fn tile_edges(
    run: impl Fn(*mut f32, usize, bool),
    c: *mut f32,
    (m, n): (usize, usize),
    (i0, j0): (usize, usize),
    acc: bool,
) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        assert!(i0 < m && j0 < n);
        let (rows, cols) = (MR.min(m - i0), NR.min(n - j0));
        if rows == MR && cols == NR {
            run(c.add(i0 * n + j0), n, acc);
        } else {
            let mut t = [0f32; MR * NR];
            let at = |r: usize, j: usize| c.add((i0 + r) * n + j0 + j);
            if acc {
                for r in 0..rows {
                    for j in 0..cols {
                        t[r * NR + j] = *at(r, j);
                    }
                }
            }
            run(t.as_mut_ptr(), NR, true);
            for r in 0..rows {
                for j in 0..cols {
                    *at(r, j) = t[r * NR + j];
                }
            }
        }
    }
}

/// The register tile, where the CPU has one (`available()` keeps other CPUs out).
///
/// Safety: as `avx512::tile12x32`.
unsafe fn kernel(kc: usize, ap: &[f32], bp: &[f32], c: *mut f32, ldc: usize, acc: bool) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        avx512::tile12x32(kc, ap.as_ptr(), MR, bp.as_ptr(), c, ldc, acc);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "sgemm::kernel without AVX-512 ({kc}, {}, {}, {c:?}, {ldc}, {acc})",
            ap.len(),
            bp.len()
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Defines a 12 x 32 register tile `c[12 x 32] (+)= a (12, kc) . bp (kc, 32)` (the
    /// accumulators as named locals) that reads element (r, p) of `a` at `a + r * rs + p *
    /// cs`, where `$strides` maps the `stride` argument to `(rs, cs)`, so that the constant
    /// one compiles into the addressing.
    macro_rules! tile_fn {
        ($(#[$doc:meta])* $name:ident, $strides:expr) => {
            $(#[$doc])*
            #[target_feature(enable = "avx512f")]
            pub unsafe fn $name(
                kc: usize,
                ap: *const f32,
                stride: usize,
                bp: *const f32,
                c: *mut f32,
                ldc: usize,
                acc: bool,
            ) {
// SAFETY: within this function's `# Safety` contract, which the caller upholds.
unsafe {
                let (rs, cs): (usize, usize) = ($strides)(stride);
                // Ask for the tile's lines of c now, so they arrive while it computes:
                // fetched at the end, a c that is not in cache (the output layer's dW at
                // 16k words, 32 MB, revisited at each depth block) stalled every tile.
                for r in 0..MR {
                    prefetch_for_write(c.add(r * ldc));
                }
                let z = _mm512_setzero_ps();
                let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
                let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
                let (mut c60, mut c61, mut c70, mut c71, mut c80, mut c81) = (z, z, z, z, z, z);
                let (mut c90, mut c91, mut ca0, mut ca1, mut cb0, mut cb1) = (z, z, z, z, z, z);
                let (mut a, mut b) = (ap, bp);
                for _ in 0..kc {
                    let b0 = _mm512_loadu_ps(b);
                    let b1 = _mm512_loadu_ps(b.add(16));
                    macro_rules! row {
                        ($r:expr, $x0:ident, $x1:ident) => {
                            let s = _mm512_set1_ps(*a.add($r * rs));
                            $x0 = _mm512_fmadd_ps(s, b0, $x0);
                            $x1 = _mm512_fmadd_ps(s, b1, $x1);
                        };
                    }
                    row!(0, c00, c01);
                    row!(1, c10, c11);
                    row!(2, c20, c21);
                    row!(3, c30, c31);
                    row!(4, c40, c41);
                    row!(5, c50, c51);
                    row!(6, c60, c61);
                    row!(7, c70, c71);
                    row!(8, c80, c81);
                    row!(9, c90, c91);
                    row!(10, ca0, ca1);
                    row!(11, cb0, cb1);
                    a = a.add(cs);
                    b = b.add(NR);
                }
                let rows = [
                    (c00, c01),
                    (c10, c11),
                    (c20, c21),
                    (c30, c31),
                    (c40, c41),
                    (c50, c51),
                    (c60, c61),
                    (c70, c71),
                    (c80, c81),
                    (c90, c91),
                    (ca0, ca1),
                    (cb0, cb1),
                ];
                for (r, (x0, x1)) in rows.into_iter().enumerate() {
                    let p = c.add(r * ldc);
                    if acc {
                        _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), x0));
                        _mm512_storeu_ps(p.add(16), _mm512_add_ps(_mm512_loadu_ps(p.add(16)), x1));
                    } else {
                        _mm512_storeu_ps(p, x0);
                        _mm512_storeu_ps(p.add(16), x1);
                    }
                }
            }
}
        };
    }

    /// Fetches the lines holding `p[0..32]` into L1, for writing (PREFETCHW: every CPU with
    /// AVX-512F has it). A hint: it never faults.
    ///
    /// # Safety
    /// The CPU has PREFETCHW (every CPU with AVX-512F); any address is allowed.
    #[inline(always)]
    unsafe fn prefetch_for_write(p: *mut f32) {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let p = p as *const u8;
            // The last float's line too: a row of 32 floats crosses three lines unless aligned.
            std::arch::asm!(
                "prefetchw [{0}]",
                "prefetchw [{0} + 64]",
                "prefetchw [{0} + 124]",
                in(reg) p,
                options(nostack, preserves_flags, readonly)
            );
        }
    }

    tile_fn!(
        /// A packed panel of `a`, `(kc, 12)` (strides (1, 12); `stride` unused).
        ///
        /// Safety: AVX-512F; `ap` holds `kc * 12`, `bp` `kc * 32` floats, `c` 12 rows of 32
        /// at stride `ldc`.
        tile12x32,
        |_| (1, MR)
    );
    tile_fn!(
        /// 12 rows of a row-major `a` read in place (strides (`stride`, 1)).
        ///
        /// Safety: AVX-512F; `ap` reaches 12 rows of `kc` at stride `rs`, `bp` `kc * 32`
        /// floats, `c` 12 rows of 32 at stride `ldc`.
        tile12x32_rows,
        |rs| (rs, 1)
    );
    tile_fn!(
        /// 12 adjacent columns of a row-major `aᵀ` read in place (strides (1, `stride`)).
        ///
        /// Safety: AVX-512F; `ap` reaches `kc` rows of 12 at stride `cs`, `bp` `kc * 32`
        /// floats, `c` 12 rows of 32 at stride `ldc`.
        tile12x32_depth,
        |cs| (1, cs)
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `a (m, k) . b (k, n)` by the definition, in f64.
    fn naive(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f32> {
        let at = |v: &MatRef, r: usize, c: usize| v.data[r * v.rs + c * v.cs] as f64;
        (0..m * n)
            .map(|i| {
                let (r, c) = (i / n, i % n);
                (0..k).map(|p| at(&a, r, p) * at(&b, p, c)).sum::<f64>() as f32
            })
            .collect()
    }

    /// A product with `sgemm`'s contract, `(m, n, k, c, accumulate, a, b)`.
    pub type Product = unsafe fn(usize, usize, usize, *mut f32, bool, MatRef, MatRef);

    /// `product` against the definition for each `(m, n, k)`, both layouts of each operand,
    /// writing and then adding.
    pub fn matches_naive(product: Product, shapes: &[(usize, usize, usize)]) {
        for &(m, n, k) in shapes {
            let val = |len: usize, s: f32| -> Vec<f32> {
                (0..len).map(|i| (i as f32 * s).sin()).collect()
            };
            let (a, b) = (val(m * k, 0.37), val(k * n, 0.11));
            for (a_view, b_view) in [
                (MatRef::rows(&a, k), MatRef::rows(&b, n)),
                (MatRef::transposed(&a, m), MatRef::transposed(&b, k)),
            ] {
                let want = naive(m, n, k, a_view, b_view);
                let mut c = vec![f32::NAN; m * n];
                // SAFETY: the callers checked available(); c is (m, n) and separate; the views
                // fit.
                unsafe { product(m, n, k, c.as_mut_ptr(), false, a_view, b_view) };
                let mut twice = c.clone();
                // SAFETY: as above.
                unsafe { product(m, n, k, twice.as_mut_ptr(), true, a_view, b_view) };
                let close = |g: f32, w: f32| (g - w).abs() <= 1e-4 * (1.0 + w.abs());
                for (i, w) in want.iter().enumerate() {
                    assert!(close(c[i], *w), "({m}, {n}, {k}) at {i}: {} vs {w}", c[i]);
                    assert!(close(twice[i], 2.0 * w), "({m}, {n}, {k}) adding, at {i}");
                }
            }
        }
    }
}
