//! The register tiles of `PackedWt::matmul`: `tile[r] = init + x[r] . panel` for a tile of
//! rows against one packed panel of 16 output columns, in AVX-512, AVX2 and plain Rust.

use super::{Isa, MAX_ROWS, PANEL};

/// A tile's rows of both blocks, as the kernel reads them.
pub(super) struct TileRows<'a> {
    pub(super) a: &'a [f32],
    pub(super) b: &'a [f32],
    pub(super) ka: usize,
    pub(super) kb: usize,
    pub(super) rows: usize,
}

/// Rows per register tile. AVX-512: 8 accumulators of 16 lanes, one weight load per 8
/// multiply-adds, and a batch of 64 is 8 whole tiles (6-row tiles computed 66 rows for it, 1-2 %
/// slower in the 4-layer bench steps). AVX2: 6 rows x 2 accumulators + 2 weights + 1
/// broadcast fill its 16 registers.
pub(super) fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2 | Isa::Plain => 6,
    }
}

/// `tile[r] = init + x[r] . panel` for the tile's rows, on `isa`'s register tile.
pub(super) fn kernel(
    isa: Isa,
    x: TileRows,
    panel: &[f32],
    init: &[f32; PANEL],
    tile: &mut [[f32; PANEL]; MAX_ROWS],
) {
    assert!(x.a.len() == x.rows * x.ka && x.b.len() == x.rows * x.kb && x.rows <= MAX_ROWS);
    assert!(panel.len() == (x.ka + x.kb) * PANEL);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            assert_eq!(x.rows, 8, "the AVX-512 tile has 8 rows");
            // SAFETY: `detect` found the feature the function is compiled for; the asserts
            // above are the lengths it reads.
            unsafe { avx512::tile8(&x, panel, init, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert_eq!(x.rows, 6, "the AVX2 tile has 6 rows");
            // SAFETY: as above.
            unsafe { avx::tile6(&x, panel, init, tile) }
        }
        _ => tile_scalar(&x, panel, init, tile),
    }
}

/// The kernel in plain Rust (CPUs without AVX2, and the tests' reference).
pub(super) fn tile_scalar(
    x: &TileRows,
    panel: &[f32],
    init: &[f32; PANEL],
    tile: &mut [[f32; PANEL]; MAX_ROWS],
) {
    for (r, t) in tile[..x.rows].iter_mut().enumerate() {
        *t = *init;
        let row = x.a[r * x.ka..(r + 1) * x.ka]
            .iter()
            .chain(&x.b[r * x.kb..(r + 1) * x.kb]);
        for (i, &v) in row.enumerate() {
            for (o, w) in t.iter_mut().zip(&panel[i * PANEL..(i + 1) * PANEL]) {
                *o += v * w;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{TileRows, MAX_ROWS, PANEL};
    use std::arch::x86_64::*;

    /// Six rows against one panel: block `a`, then block `b` into the same accumulators.
    /// The accumulators are named locals: kept in an array, they would be stored to the
    /// stack on every iteration.
    ///
    /// Safety: `x.a` is `6 * x.ka` long, `x.b` `6 * x.kb`, `panel` `(ka + kb) * 16`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile6(
        x: &TileRows,
        panel: &[f32],
        init: &[f32; PANEL],
        tile: &mut [[f32; PANEL]; MAX_ROWS],
    ) {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let (b0, b1) = (
                _mm256_loadu_ps(init.as_ptr()),
                _mm256_loadu_ps(init.as_ptr().add(8)),
            );
            let (mut a00, mut a01, mut a10, mut a11) = (b0, b1, b0, b1);
            let (mut a20, mut a21, mut a30, mut a31) = (b0, b1, b0, b1);
            let (mut a40, mut a41, mut a50, mut a51) = (b0, b1, b0, b1);
            let mut p = panel.as_ptr();
            for (block, k) in [(x.a, x.ka), (x.b, x.kb)] {
                let x0 = block.as_ptr();
                let (x1, x2, x3) = (x0.add(k), x0.add(2 * k), x0.add(3 * k));
                let (x4, x5) = (x0.add(4 * k), x0.add(5 * k));
                for i in 0..k {
                    let w0 = _mm256_loadu_ps(p);
                    let w1 = _mm256_loadu_ps(p.add(8));
                    p = p.add(PANEL);
                    let b = _mm256_broadcast_ss(&*x0.add(i));
                    a00 = _mm256_fmadd_ps(b, w0, a00);
                    a01 = _mm256_fmadd_ps(b, w1, a01);
                    let b = _mm256_broadcast_ss(&*x1.add(i));
                    a10 = _mm256_fmadd_ps(b, w0, a10);
                    a11 = _mm256_fmadd_ps(b, w1, a11);
                    let b = _mm256_broadcast_ss(&*x2.add(i));
                    a20 = _mm256_fmadd_ps(b, w0, a20);
                    a21 = _mm256_fmadd_ps(b, w1, a21);
                    let b = _mm256_broadcast_ss(&*x3.add(i));
                    a30 = _mm256_fmadd_ps(b, w0, a30);
                    a31 = _mm256_fmadd_ps(b, w1, a31);
                    let b = _mm256_broadcast_ss(&*x4.add(i));
                    a40 = _mm256_fmadd_ps(b, w0, a40);
                    a41 = _mm256_fmadd_ps(b, w1, a41);
                    let b = _mm256_broadcast_ss(&*x5.add(i));
                    a50 = _mm256_fmadd_ps(b, w0, a50);
                    a51 = _mm256_fmadd_ps(b, w1, a51);
                }
            }
            let acc = [
                (a00, a01),
                (a10, a11),
                (a20, a21),
                (a30, a31),
                (a40, a41),
                (a50, a51),
            ];
            for (t, (lo, hi)) in tile.iter_mut().zip(acc) {
                _mm256_storeu_ps(t.as_mut_ptr(), lo);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), hi);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{TileRows, MAX_ROWS, PANEL};
    use std::arch::x86_64::*;

    /// Eight rows against one panel, one 16-lane register per row: a feature of eight rows
    /// costs one weight load and eight broadcast multiply-adds.
    ///
    /// Safety: AVX-512F; `x.a` is `8 * x.ka` long, `x.b` `8 * x.kb`, `panel`
    /// `(ka + kb) * 16`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile8(
        x: &TileRows,
        panel: &[f32],
        init: &[f32; PANEL],
        tile: &mut [[f32; PANEL]; MAX_ROWS],
    ) {
        // SAFETY: within this function's `# Safety` contract, which the caller upholds.
        unsafe {
            let b = _mm512_loadu_ps(init.as_ptr());
            let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
            let (mut a4, mut a5, mut a6, mut a7) = (b, b, b, b);
            let mut p = panel.as_ptr();
            for (block, k) in [(x.a, x.ka), (x.b, x.kb)] {
                let x0 = block.as_ptr();
                let (x1, x2, x3) = (x0.add(k), x0.add(2 * k), x0.add(3 * k));
                let (x4, x5, x6, x7) = (x0.add(4 * k), x0.add(5 * k), x0.add(6 * k), x0.add(7 * k));
                for i in 0..k {
                    let w = _mm512_loadu_ps(p);
                    p = p.add(PANEL);
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(*x0.add(i)), w, a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(*x1.add(i)), w, a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(*x2.add(i)), w, a2);
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(*x3.add(i)), w, a3);
                    a4 = _mm512_fmadd_ps(_mm512_set1_ps(*x4.add(i)), w, a4);
                    a5 = _mm512_fmadd_ps(_mm512_set1_ps(*x5.add(i)), w, a5);
                    a6 = _mm512_fmadd_ps(_mm512_set1_ps(*x6.add(i)), w, a6);
                    a7 = _mm512_fmadd_ps(_mm512_set1_ps(*x7.add(i)), w, a7);
                }
            }
            for (t, a) in tile.iter_mut().zip([a0, a1, a2, a3, a4, a5, a6, a7]) {
                _mm512_storeu_ps(t.as_mut_ptr(), a);
            }
        }
    }
}
