//! `x . wᵀ` for many rows against a weight matrix packed once into panels of 16 output
//! columns. Each step of the inner loop broadcasts one input feature of a tile of rows (8
//! with AVX-512, 6 elsewhere) and multiplies it with 16 weights, so the accumulators stay in
//! registers for the whole depth and no horizontal sums are needed (`rowdot`'s dot-product
//! tiles end in one per output). Worth it from 6 rows (the last rows short of a tile are
//! padded with zero rows); below that, `rowdot` wastes nothing.

mod tiles;

use rayon::prelude::*;

use self::tiles::{kernel, tile_rows, TileRows};
use super::isa::Isa;
use super::matrix::MatRef;

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

/// The rows after the last whole tile, and zero rows up to a tile; the kernel and its rows.
struct TailParts {
    a: Vec<f32>,
    b: Vec<f32>,
    ka: usize,
    kb: usize,
    isa: Isa,
    rows: usize,
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

#[cfg(test)]
mod tests;
