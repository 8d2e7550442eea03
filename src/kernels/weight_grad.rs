//! An LSTM layer's weight and bias gradients in one pass over its gate gradients `dG (K, 4H)`
//! (K = steps x batch): `dW_ih = dGᵀ . x`, `dW_hh = dGᵀ . h_prev` and `db` = the column
//! sums of `dG`. Two gemm-crate products each packed all of `dG` (10 MB a layer at 512) by
//! reading it along a stride of 4H; here it is packed once, row by row in order, for both
//! products, and summed into `db` while it is read. The products then run `tile`'s
//! AVX-512 register tile over blocks of the packed operands sized for each core's caches,
//! each pool thread its own rows of the products from start to end (`per_thread`).

use super::column_sums::column_sums;
use super::gemm::gemm;
use super::matrix::MatRef;
use super::scratch;
use super::tile::{self, SendPtr, KC, MR, NR};

/// Bytes of packed right-hand panels a block of columns keeps in a core's L2 cache.
const B_BLOCK_BYTES: usize = 640 * 1024;

/// A right-hand operand `b (K, n)` of `dGᵀ . b`, row-major: its first `skip` rows are zero
/// and not stored (the encoder's zero h0 before its first step); the rest are the rows of
/// `pieces.0` followed by those of `pieces.1` (h0, then every step's h but the last).
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    pub pieces: (&'a [f32], &'a [f32]),
    pub n: usize,
    pub skip: usize,
}

impl Operand<'_> {
    /// Row `p` of `b`, or `None` for a skipped (zero) row.
    fn row(&self, p: usize) -> Option<&[f32]> {
        let r = p.checked_sub(self.skip)?;
        let first = self.pieces.0.len() / self.n.max(1);
        Some(if r < first {
            &self.pieces.0[r * self.n..][..self.n]
        } else {
            &self.pieces.1[(r - first) * self.n..][..self.n]
        })
    }

    /// The stored rows; `k` is `skip` more.
    fn stored_rows(&self) -> usize {
        (self.pieces.0.len() + self.pieces.1.len()) / self.n.max(1)
    }
}

/// `(dGᵀ . b for each operand, column sums of dG)` for `d_gates (K, g4)` row-major; each
/// product is `(g4, n)` row-major.
pub fn weight_grads(
    d_gates: &[f32],
    g4: usize,
    operands: [Operand; 2],
) -> ([Vec<f32>; 2], Vec<f32>) {
    let k = d_gates.len() / g4.max(1);
    assert_eq!(d_gates.len(), k * g4, "weight_grads: dG is not (K, 4H)");
    for b in &operands {
        assert!(
            b.n > 0 && b.skip + b.stored_rows() == k && b.pieces.0.len() % b.n == 0,
            "weight_grads: an operand is not (K, n)"
        );
    }
    if tile::available() && g4 > 0 {
        per_thread(d_gates, g4, k, operands)
    } else {
        per_product(d_gates, g4, k, operands)
    }
}

/// The plain way: a gemm per operand (its rows joined when it comes in two pieces), then
/// the column sums. CPUs without AVX-512, and the tests' reference.
fn per_product(
    d_gates: &[f32],
    g4: usize,
    k: usize,
    operands: [Operand; 2],
) -> ([Vec<f32>; 2], Vec<f32>) {
    let grads = operands.map(|b| {
        let mut out = vec![0f32; g4 * b.n];
        let rows: Vec<f32> = [b.pieces.0, b.pieces.1].concat();
        let dg = &d_gates[b.skip * g4..];
        let a = MatRef::transposed(dg, g4);
        gemm(
            g4,
            b.n,
            k - b.skip,
            &mut out,
            false,
            a,
            MatRef::rows(&rows, b.n),
        );
        out
    });
    (grads, column_sums(d_gates, g4))
}

/// The AVX-512 way (see the module). Every pool thread takes a fixed share of `dG`'s column
/// panels (the products' rows) and works through the whole depth alone: per depth block of
/// up to `KC` rows it packs its panels of `dG`, and per block of right-hand panels sized for
/// its L2 cache, its own copy of them, then runs its panels of `dG` over them.
///
/// Nothing one thread writes is written by the other, then or in the next call: with the
/// host running the two cores on different dies, the shared packed right-hand panels and
/// shares handed out by work stealing cost 27.5-28.0 ms a layer at 512 against 26.0-26.5
/// this way (the same, 25.6-25.9, with the cores on one die), though each thread now packs
/// all of the right-hand panels.
fn per_thread(
    d_gates: &[f32],
    g4: usize,
    k: usize,
    operands: [Operand; 2],
) -> ([Vec<f32>; 2], Vec<f32>) {
    let mut sums = vec![0f32; g4];
    // Every element of a product is written by its first tile, before anything reads it,
    // except for an operand with no rows past `skip` (zeros): so no zero fill by this thread
    // where it is written (`scratch` says why). Their lengths are set once written.
    let mut grads = operands.map(|b| match b.skip < k {
        true => Vec::with_capacity(g4 * b.n),
        false => vec![0f32; g4 * b.n],
    });
    if k == 0 {
        return (grads, sums);
    }
    let blocks = k.div_ceil(KC);
    let kc_full = k.div_ceil(blocks);
    let panels_a = g4.div_ceil(MR);
    let tasks = rayon::current_num_threads().clamp(1, panels_a);
    let per_task = panels_a.div_ceil(tasks);
    // Every right-hand panel as (operand, first column).
    let panels_b: Vec<(usize, usize)> = (0..2)
        .flat_map(|j| (0..operands[j].n.div_ceil(NR)).map(move |jp| (j, jp * NR)))
        .collect();
    let per_block_b = (B_BLOCK_BYTES / 4 / (NR * kc_full)).max(1);
    let outs = grads.each_mut().map(|g| SendPtr(g.as_mut_ptr()));
    let sums_at = SendPtr(sums.as_mut_ptr());
    rayon::broadcast(|ctx| {
        let t = ctx.index();
        let q0 = t * per_task;
        if q0 >= panels_a {
            return;
        }
        let panels = per_task.min(panels_a - q0);
        let n_sums = (panels * MR).min(g4 - q0 * MR);
        // SAFETY: the threads' ranges of `sums` are disjoint, and nothing else touches it
        // until the broadcast returns.
        let my_sums = unsafe { std::slice::from_raw_parts_mut(sums_at.get().add(q0 * MR), n_sums) };
        // Packing writes every slot it later reads. From this thread's own pool.
        let mut pa = scratch::take(panels * MR * kc_full);
        let mut pb = scratch::take(per_block_b * NR * kc_full);
        for block in 0..blocks {
            let p0 = block * kc_full;
            let kc = kc_full.min(k - p0);
            pack_a_rows(d_gates, g4, (p0, kc, kc_full), q0, &mut pa, my_sums);
            for cols in panels_b.chunks(per_block_b) {
                for (panel, &(j, j0)) in pb.chunks_mut(NR * kc_full).zip(cols) {
                    pack_b(&operands[j], p0, kc, j0, panel);
                }
                for q in 0..panels {
                    let ap = &pa[q * MR * kc_full..][..MR * kc];
                    for (g, &(j, j0)) in cols.iter().enumerate() {
                        let b = &operands[j];
                        // Rows before `skip` are zero: start past them.
                        let lo = b.skip.saturating_sub(p0).min(kc);
                        if lo == kc {
                            continue;
                        }
                        // The block holding row `skip` writes; later blocks add.
                        let acc = block > b.skip / kc_full;
                        let bp = &pb[g * NR * kc_full..][..NR * kc];
                        let at = ((q0 + q) * MR, j0);
                        // SAFETY: tile::available() (the caller checked); each thread writes
                        // only its own rows of each product, which nothing else reads now.
                        unsafe {
                            tile::tile(
                                kc - lo,
                                &ap[lo * MR..],
                                &bp[lo * NR..],
                                outs[j].get(),
                                (g4, b.n),
                                at,
                                acc,
                            )
                        };
                    }
                }
            }
        }
        scratch::give(pa);
        scratch::give(pb);
    });
    for (g, b) in grads.iter_mut().zip(&operands) {
        if b.skip < k {
            // SAFETY: the tiles above wrote all g4 x n elements (the capacity), see above.
            unsafe { g.set_len(g4 * b.n) };
        }
    }
    (grads, sums)
}

/// Packs depth rows `p0..p0 + kc` of the column panels from `q0` on (as many as `out`
/// holds, `kc_full` rows each) of `dG`, reading each row of `dG` once and in order, and adds
/// those rows into the panels' column sums.
fn pack_a_rows(
    d_gates: &[f32],
    g4: usize,
    (p0, kc, kc_full): (usize, usize, usize),
    q0: usize,
    out: &mut [f32],
    sums: &mut [f32],
) {
    let panels = out.len() / (MR * kc_full);
    let (i0, i1) = (q0 * MR, (q0 * MR + sums.len()).min(g4));
    for p in 0..kc {
        let row = &d_gates[(p0 + p) * g4..][..g4];
        for (s, v) in sums.iter_mut().zip(&row[i0..i1]) {
            *s += v;
        }
        for q in 0..panels {
            let from = i0 + q * MR;
            let rows = MR.min(g4 - from);
            let slot = &mut out[q * MR * kc_full + p * MR..][..MR];
            slot[..rows].copy_from_slice(&row[from..from + rows]);
            slot[rows..].fill(0.0);
        }
    }
}

/// Columns `j0..j0 + 32` of rows `p0..p0 + kc` of `b`, as `(kc, 32)`; zeros for skipped
/// rows and past column `n`.
fn pack_b(b: &Operand, p0: usize, kc: usize, j0: usize, out: &mut [f32]) {
    let cols = NR.min(b.n - j0);
    for p in 0..kc {
        let slot = &mut out[p * NR..(p + 1) * NR];
        match b.row(p0 + p) {
            Some(row) => {
                slot[..cols].copy_from_slice(&row[j0..j0 + cols]);
                slot[cols..].fill(0.0);
            }
            None => slot.fill(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, s: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * s).sin()).collect()
    }

    /// `dGᵀ . b` by the definition, in f64, with `b`'s skipped rows as zeros.
    fn naive(d_gates: &[f32], g4: usize, b: &Operand) -> Vec<f32> {
        let k = d_gates.len() / g4;
        (0..g4 * b.n)
            .map(|e| {
                let (i, j) = (e / b.n, e % b.n);
                (0..k)
                    .filter_map(|p| b.row(p).map(|r| d_gates[p * g4 + i] as f64 * r[j] as f64))
                    .sum::<f64>() as f32
            })
            .collect()
    }

    /// Both ways against the definition: panel edges (4H short of 12, n short of 32), one
    /// and several depth blocks, skipped rows inside the first block and past it, an
    /// operand in two pieces, several column blocks.
    #[test]
    fn both_ways_match_the_definition() {
        for &(k, g4, n1, n2, skip) in &[
            (7, 12, 32, 32, 0),
            (40, 20, 5, 33, 3),
            (1100, 76, 70, 40, 64),
            (1300, 50, 700, 8, 700),
            (9, 16, 3, 3, 9),
        ] {
            let dg = values(k * g4, 0.37);
            let x = values(k * n1, 0.11);
            let h = values((k - skip) * n2, 0.23);
            let split = (k - skip) / 3 * n2;
            let ops = [
                Operand {
                    pieces: (&x, &[]),
                    n: n1,
                    skip: 0,
                },
                Operand {
                    pieces: (&h[..split], &h[split..]),
                    n: n2,
                    skip,
                },
            ];
            let want = ops.map(|b| naive(&dg, g4, &b));
            let want_sums: Vec<f32> = (0..g4)
                .map(|i| (0..k).map(|p| dg[p * g4 + i] as f64).sum::<f64>() as f32)
                .collect();
            let close = |g: f32, w: f32| (g - w).abs() <= 1e-4 * (1.0 + w.abs());
            let mut ways = vec![("per product", per_product(&dg, g4, k, ops))];
            if tile::available() {
                ways.push(("per thread", per_thread(&dg, g4, k, ops)));
            }
            for (way, (grads, sums)) in ways {
                for (j, (g, w)) in grads.iter().zip(&want).enumerate() {
                    for (e, (g, w)) in g.iter().zip(w).enumerate() {
                        assert!(
                            close(*g, *w),
                            "{way} ({k}, {g4}, {skip}) operand {j} at {e}: {g} vs {w}"
                        );
                    }
                }
                for (i, (s, w)) in sums.iter().zip(&want_sums).enumerate() {
                    assert!(
                        close(*s, *w),
                        "{way} ({k}, {g4}) column sum {i}: {s} vs {w}"
                    );
                }
            }
        }
    }
}
