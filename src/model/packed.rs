//! `x . wᵀ` for many rows against a weight matrix packed once into panels of 16 output
//! columns. Each step of the inner loop broadcasts one input feature of a tile of rows (8
//! with AVX-512, 6 elsewhere) and multiplies it with 16 weights, so the accumulators stay in
//! registers for the whole depth and no horizontal sums are needed (`rowdot`'s dot-product
//! tiles end in one per output). Worth it from 6 rows (the last rows short of a tile are
//! padded with zero rows); below that, `rowdot` wastes nothing.

use rayon::prelude::*;

use super::isa::Isa;
use super::kernels::MatRef;

/// Output columns per panel: two eight-lane registers.
const PANEL: usize = 16;
/// The most rows a register tile has (`tile_rows`).
const MAX_ROWS: usize = 8;
/// Panels per parallel task.
const PANELS_PER_TASK: usize = 4;

/// A weight matrix `w (n, k)` laid out as `ceil(n / 16)` panels, each `(k, 16)`: the 16
/// weights of input feature `i` side by side (zeros past column `n`).
pub struct PackedWt {
    n: usize,
    k: usize,
    data: Vec<f32>,
}

impl PackedWt {
    /// Packs a row-major `w (n, k)`.
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "PackedWt: w is not (n, k)");
        Self::from_view(MatRef::rows(w, k), n, k)
    }

    /// Packs `w (n, k)` read through a strided view (a block of a wider matrix, or a
    /// transpose), without copying it out first.
    pub fn from_view(w: MatRef, n: usize, k: usize) -> Self {
        Self::from_views(&[(w, k)], n)
    }

    /// Packs `w = [w_0 | w_1 | ...] (n, k_0 + k_1 + ...)` from views of its column blocks
    /// (an LSTM's `W_ih` and `W_hh`, without joining them first).
    pub fn from_views(parts: &[(MatRef, usize)], n: usize) -> Self {
        for (w, k) in parts {
            assert!(w.fits(n, *k), "PackedWt: a view is smaller than (n, k)");
        }
        let k: usize = parts.iter().map(|(_, k)| k).sum();
        let panels = n.div_ceil(PANEL);
        let len = panels * k * PANEL;
        let mut data = Vec::with_capacity(len);
        data.spare_capacity_mut()[..len]
            .par_chunks_mut((k * PANEL).max(1))
            .enumerate()
            .for_each(|(p, panel)| {
                let (first, cols) = (p * PANEL, PANEL.min(n - p * PANEL));
                let mut row = 0;
                for &(w, k) in parts {
                    let mine = &mut panel[row * PANEL..(row + k) * PANEL];
                    pack_panel(w, k, (first, cols), mine);
                    row += k;
                }
                // The last panel's columns past n.
                if cols < PANEL {
                    for slot in panel.chunks_exact_mut(PANEL) {
                        slot[cols..].iter_mut().for_each(|s| _ = s.write(0.0));
                    }
                }
            });
        // SAFETY: every panel's k rows of 16 were written above, columns past n as zeros.
        unsafe { data.set_len(len) };
        PackedWt { n, k, data }
    }

    /// Output columns `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `out (m, n) = [out +] x (m, k) . wᵀ [+ bias (n)]`, all row-major, where the rows of
    /// `x` are given in two column blocks side by side, `x = [x.0 | x.1]` (an LSTM layer's
    /// input and its previous h, without copying them together; `x.1` may be empty). `x` may
    /// be narrower than `k`: its missing last columns are zeros and cost nothing (an LSTM's
    /// first step from a zero state skips `W_hh`). Panels run in parallel when the product
    /// is large enough to pay for it.
    pub fn matmul(
        &self,
        x: (&[f32], &[f32]),
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        self.matmul_on(Isa::detect(), x, m, bias, out, accumulate);
    }

    /// `matmul` on the given register tile (the tests run each one the CPU has).
    fn matmul_on(
        &self,
        isa: Isa,
        x: (&[f32], &[f32]),
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        let (n, k) = (self.n, self.k);
        if m == 0 {
            assert!(out.is_empty(), "PackedWt::matmul: output is not (0, n)");
            return;
        }
        let parts = Parts::new(x, m);
        assert!(
            parts.ka + parts.kb <= k,
            "PackedWt::matmul: x is wider than k"
        );
        assert!(out.len() == m * n, "PackedWt::matmul: output is not (m, n)");
        assert!(
            bias.is_none_or(|b| b.len() == n),
            "PackedWt::matmul: bias has the wrong size"
        );
        if n == 0 {
            return;
        }
        let block = if m * n * k < 1 << 17 {
            n
        } else {
            PANEL * PANELS_PER_TASK
        };
        // Every task gets its own column range of every output row: disjoint borrows.
        let mut pieces: Vec<Vec<&mut [f32]>> = (0..n.div_ceil(block))
            .map(|_| Vec::with_capacity(m))
            .collect();
        for row in out.chunks_mut(n) {
            for (b, piece) in row.chunks_mut(block).enumerate() {
                pieces[b].push(piece);
            }
        }
        // The last rows short of a whole tile, padded with zero rows to one.
        let tail = parts.tail(isa);
        let task = |(b, mut rows): (usize, Vec<&mut [f32]>)| {
            let (lo, hi) = (b * block, ((b + 1) * block).min(n));
            self.columns(&parts, &tail, (lo, hi), bias, &mut rows, accumulate);
        };
        if pieces.len() == 1 {
            pieces.into_iter().enumerate().for_each(task);
        } else {
            pieces.into_par_iter().enumerate().for_each(task);
        }
    }

    /// Columns `lo..hi` (`lo` a multiple of 16) into `dst`, one `hi - lo` slice per row.
    fn columns(
        &self,
        x: &Parts,
        tail: &TailParts,
        (lo, hi): (usize, usize),
        bias: Option<&[f32]>,
        dst: &mut [&mut [f32]],
        acc: bool,
    ) {
        let k = self.k;
        for p in lo / PANEL..hi.div_ceil(PANEL) {
            // The features x has; the zero columns past them add nothing.
            let panel = &self.data[p * k * PANEL..][..(x.ka + x.kb) * PANEL];
            let (c0, cols) = (p * PANEL - lo, PANEL.min(hi - p * PANEL));
            let mut init = [0f32; PANEL];
            if let Some(bias) = bias {
                init[..cols].copy_from_slice(&bias[p * PANEL..p * PANEL + cols]);
            }
            let mut r = 0;
            while r < x.m {
                let rows = (x.m - r).min(tail.rows);
                let mut tile = [[0f32; PANEL]; MAX_ROWS];
                if rows == tail.rows {
                    kernel(tail.isa, x.rows(r, rows), panel, &init, &mut tile);
                } else {
                    kernel(tail.isa, tail.block(), panel, &init, &mut tile);
                }
                for (i, t) in tile[..rows].iter().enumerate() {
                    let slot = &mut dst[r + i][c0..c0 + cols];
                    if acc {
                        slot.iter_mut().zip(t).for_each(|(s, v)| *s += v);
                    } else if let Ok(whole) = <&mut [f32; PANEL]>::try_from(&mut *slot) {
                        // A fixed-size copy is two register moves, not a memcpy call.
                        *whole = *t;
                    } else {
                        slot.copy_from_slice(&t[..cols]);
                    }
                }
                r += rows;
            }
        }
    }
}

/// Columns `first..first + cols` of `w (n, k)` (a view) into one panel's `k` rows of 16;
/// the slots past `cols` are left for the caller.
fn pack_panel(
    w: MatRef,
    k: usize,
    (first, cols): (usize, usize),
    panel: &mut [std::mem::MaybeUninit<f32>],
) {
    // Copies run along the view's unit stride, without a bounds check per element.
    if w.rs == 1 {
        // The panel's columns of feature i sit side by side in the view.
        for (i, slot) in panel.chunks_exact_mut(PANEL).enumerate() {
            let from = first + i * w.cs;
            for (s, &v) in slot.iter_mut().zip(&w.data[from..from + cols]) {
                s.write(v);
            }
        }
    } else if w.cs == 1 {
        // Each output column is a contiguous row of the view: a transpose, done 16 features
        // at a time so the 1 KiB being written stays in L1 (column by column over the whole
        // panel took 3x as long at k = 1024).
        let rows: Vec<&[f32]> = (0..cols)
            .map(|j| &w.data[(first + j) * w.rs..][..k])
            .collect();
        for (i0, block) in panel.chunks_mut(PANEL * PANEL).enumerate() {
            let from = i0 * PANEL;
            for (j, row) in rows.iter().enumerate() {
                let part = &row[from..(from + PANEL).min(k)];
                for (slot, &v) in block.chunks_exact_mut(PANEL).zip(part) {
                    slot[j].write(v);
                }
            }
        }
    } else {
        for (i, slot) in panel.chunks_exact_mut(PANEL).enumerate() {
            for (j, s) in slot[..cols].iter_mut().enumerate() {
                s.write(w.data[(first + j) * w.rs + i * w.cs]);
            }
        }
    }
}

/// The rows of `x = [a | b]`: `a (m, ka)`, `b (m, kb)`.
struct Parts<'a> {
    a: &'a [f32],
    b: &'a [f32],
    m: usize,
    ka: usize,
    kb: usize,
}

/// A tile's rows of both blocks, as the kernel reads them.
struct TileRows<'a> {
    a: &'a [f32],
    b: &'a [f32],
    ka: usize,
    kb: usize,
    rows: usize,
}

/// The rows after the last whole tile, and zero rows up to a tile; the kernel and its rows.
struct TailParts {
    a: Vec<f32>,
    b: Vec<f32>,
    ka: usize,
    kb: usize,
    isa: Isa,
    rows: usize,
}

/// Rows per register tile. AVX-512: 8 accumulators of 16 lanes, one weight load per 8
/// multiply-adds, and a batch of 64 is 8 whole tiles (6-row tiles computed 66 rows for it, 1-2 %
/// slower in the 4-layer bench steps). AVX2: 6 rows x 2 accumulators + 2 weights + 1
/// broadcast fill its 16 registers.
fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2 | Isa::Plain => 6,
    }
}

impl<'a> Parts<'a> {
    fn new((a, b): (&'a [f32], &'a [f32]), m: usize) -> Self {
        let ka = a.len().checked_div(m).unwrap_or(0);
        let kb = b.len().checked_div(m).unwrap_or(0);
        assert!(
            a.len() == m * ka && b.len() == m * kb,
            "PackedWt::matmul: x blocks are not (m, _)"
        );
        Parts { a, b, m, ka, kb }
    }

    /// Rows `r..r + rows`.
    fn rows(&self, r: usize, rows: usize) -> TileRows<'_> {
        TileRows {
            a: &self.a[r * self.ka..(r + rows) * self.ka],
            b: &self.b[r * self.kb..(r + rows) * self.kb],
            ka: self.ka,
            kb: self.kb,
            rows,
        }
    }

    fn tail(&self, isa: Isa) -> TailParts {
        let rows = tile_rows(isa);
        let from = self.m - self.m % rows;
        let pad = |x: &[f32], k: usize| {
            let mut t = vec![0f32; rows * k];
            t[..(self.m - from) * k].copy_from_slice(&x[from * k..self.m * k]);
            t
        };
        TailParts {
            a: pad(self.a, self.ka),
            b: pad(self.b, self.kb),
            ka: self.ka,
            kb: self.kb,
            isa,
            rows,
        }
    }
}

impl TailParts {
    fn block(&self) -> TileRows<'_> {
        TileRows {
            a: &self.a,
            b: &self.b,
            ka: self.ka,
            kb: self.kb,
            rows: self.rows,
        }
    }
}

/// `tile[r] = init + x[r] . panel` for the tile's rows, on `isa`'s register tile.
fn kernel(
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
fn tile_scalar(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rowdot::tests::{case, naive};

    /// Each SIMD tile the CPU can run against the plain one at its rows, both column blocks
    /// used.
    #[test]
    fn simd_tiles_match_the_scalar_tile() {
        let (ka, kb) = (7, 19);
        let panel: Vec<f32> = (0..(ka + kb) * PANEL)
            .map(|i| (i as f32 * 0.07).sin())
            .collect();
        let init: [f32; PANEL] = std::array::from_fn(|j| j as f32 * 0.5);
        for isa in Isa::available().into_iter().skip(1) {
            let rows = tile_rows(isa);
            let a: Vec<f32> = (0..rows * ka).map(|i| (i as f32 * 0.31).sin()).collect();
            let b: Vec<f32> = (0..rows * kb).map(|i| (i as f32 * 0.17).cos()).collect();
            let x = || TileRows {
                a: &a,
                b: &b,
                ka,
                kb,
                rows,
            };
            let mut want = [[0f32; PANEL]; MAX_ROWS];
            tile_scalar(&x(), &panel, &init, &mut want);
            let mut got = [[0f32; PANEL]; MAX_ROWS];
            kernel(isa, x(), &panel, &init, &mut got);
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{isa:?}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn matches_naive_for_every_tile_edge() {
        // No rows, row counts around the 6- and 8-row tiles, column counts around the
        // 16-column panel and the 64-column task, odd and even depths, small and parallel sizes.
        for &(m, n, k) in &[
            (0, 5, 3),
            (1, 1, 1),
            (2, 5, 7),
            (6, 16, 8),
            (7, 17, 13),
            (8, 16, 9),
            (9, 33, 5),
            (64, 40, 30),
            (13, 130, 256),
            (6, 67, 33),
            (160, 300, 256),
        ] {
            let (x, w, b) = case(m, n, k);
            let packed = PackedWt::new(&w, n, k);
            let want = naive(&x, (m, n, k), &w, &b);
            for isa in Isa::available() {
                let mut out = vec![f32::NAN; m * n];
                packed.matmul_on(isa, (&x, &[]), m, Some(&b), &mut out, false);
                // Accumulating adds the product (and bias) again; x given as two blocks.
                let mut twice = out.clone();
                let ka = k / 3;
                let (a, c): (Vec<f32>, Vec<f32>) = (
                    x.chunks(k).flat_map(|r| r[..ka].to_vec()).collect(),
                    x.chunks(k).flat_map(|r| r[ka..].to_vec()).collect(),
                );
                packed.matmul_on(isa, (&a, &c), m, Some(&b), &mut twice, true);
                for (i, e) in want.iter().enumerate() {
                    let close = |a: f32, e: f32| (a - e).abs() <= 1e-4 * (1.0 + e.abs());
                    assert!(
                        close(out[i], *e),
                        "{isa:?} m={m} n={n} k={k} at {i}: {} vs {e}",
                        out[i]
                    );
                    assert!(
                        close(twice[i], 2.0 * e),
                        "{isa:?} accumulate, m={m} n={n} k={k} at {i}"
                    );
                }
            }
        }
    }

    /// `x` narrower than `k` gives what `x` padded with zero columns gives, at every tile
    /// edge and on the path for small batches.
    #[test]
    fn narrower_x_is_zero_padded() {
        for &(m, n, k, ka) in &[(7, 17, 13, 5), (13, 130, 256, 128), (64, 300, 256, 100)] {
            let (x, w, b) = case(m, n, k);
            let short: Vec<f32> = x.chunks(k).flat_map(|r| r[..ka].to_vec()).collect();
            let padded: Vec<f32> = short
                .chunks(ka)
                .flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, k - ka)))
                .collect();
            let want = naive(&padded, (m, n, k), &w, &b);
            let packed = PackedWt::new(&w, n, k);
            let mut out = vec![f32::NAN; m * n];
            packed.matmul((&short, &[]), m, Some(&b), &mut out, false);
            for (i, e) in want.iter().enumerate() {
                assert!(
                    (out[i] - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "m={m} n={n} k={k} ka={ka} at {i}: {} vs {e}",
                    out[i]
                );
            }
        }
    }

    /// Packing through a view (a block of a wider matrix, and the transpose of one) gives
    /// the same panels as packing a row-major copy.
    #[test]
    fn views_pack_like_copies() {
        let (n, k, left) = (37, 21, 5);
        let stride = left + k + 3;
        let wide: Vec<f32> = (0..n * stride).map(|i| (i as f32 * 0.37).sin()).collect();
        // Block: columns left..left + k of the (n, stride) matrix.
        let block: Vec<f32> = wide
            .chunks(stride)
            .flat_map(|r| r[left..left + k].to_vec())
            .collect();
        // Packing through the view gives the panels of packing the row-major copy.
        let same = |rs: usize, cs: usize, (rows, cols): (usize, usize), copy: &[f32]| {
            let view = MatRef {
                data: &wide[left..],
                rs,
                cs,
            };
            assert_eq!(
                PackedWt::from_view(view, rows, cols).data,
                PackedWt::new(copy, rows, cols).data,
                "strides ({rs}, {cs})"
            );
        };
        same(stride, 1, (n, k), &block);
        // Transpose: the block read as (k, n).
        let t: Vec<f32> = (0..k)
            .flat_map(|c| (0..n).map(move |r| (r, c)))
            .map(|(r, c)| block[r * k + c])
            .collect();
        same(1, stride, (k, n), &t);
        // Neither stride 1: every other column of the wide matrix.
        let cols = (stride - left).div_ceil(2);
        let every_other: Vec<f32> = wide
            .chunks(stride)
            .flat_map(|r| r[left..].iter().step_by(2).copied().collect::<Vec<_>>())
            .collect();
        same(stride, 2, (n, cols), &every_other);
    }
}
