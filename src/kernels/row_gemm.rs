//! A matrix product whose threads share nothing they write: `c (m, n) = [c +] a (m, k) .
//! b (k, n)` for a tall `a` against a narrow `b` (n in the hundreds): the output layer's
//! gradients `d logitsᵀ . h` (dW) and `d logits . W` (dh), where `kernels::gemm` picks it.
//!
//! Each thread owns a block of `c`'s rows and packs its own copy of `b`'s panels (a block
//! of them sized to stay in its core's L2 cache); whole panels of `a` are read where they
//! lie (one stride is 1), and `tile`'s 12 x 32 register tile runs over them. The gemm
//! crate packs `b` once, split over the threads, so each core reads blocks the other
//! packed, and joins the threads once per block: when the host runs the two cores on
//! different dies (`nmt bench core-to-core` ~330 ns), it ran dh in 110-116 ms and dW in
//! 112-119 at 512/16k, this in 102-104 and 102-107; with the cores together 98-103 and
//! 108-111 against 101-103 and 101. (For `d gates . W_ih`, whose rows of 2048 floats must
//! be packed, the gemm crate stayed faster: 12.6 against 13.3-14.0 ms.)

use rayon::prelude::*;

use super::matrix::MatRef;
use super::tile::{self, pack_a, pack_b, tile, tile_in_place, SendPtr, KC, MR, NR};

/// Bytes of packed `b` a thread keeps in its L2 cache (1 MiB a core on the machines measured).
const B_BLOCK_BYTES: usize = 640 * 1024;
/// The shallowest depth block: below it the tile's loads and stores of `c` start to count.
const MIN_KC: usize = 128;

/// Whether `sgemm_rows` runs here (AVX-512F) and pays: enough rows for every thread, `b`
/// no wider than a few L2 blocks, and `a` read in place (packed, the gemm crate was faster).
pub fn suits(m: usize, n: usize, k: usize, a: MatRef) -> bool {
    tile::available()
        && m >= 4 * MR * rayon::current_num_threads()
        && n <= 2048
        && k >= 64
        && reads_in_place(a)
}

/// Whether whole panels of `a` are read where they lie: one stride is 1 and the other does
/// not put its 12 rows (or depth steps) on a few L1 sets (a stride of 2 KiB or a multiple of
/// it: d gates . W_ih at 512, 4H = 2048 floats a row, ran 5 % slower in place than packed).
/// Packing them took ~8 % of dh and dW at 512/16k.
fn reads_in_place(a: MatRef) -> bool {
    match (a.rs, a.cs) {
        (1, stride) | (stride, 1) => stride % 512 != 0,
        _ => false,
    }
}

/// `c (m, n, row-major) = [c +] a (m, k) . b (k, n)`, each thread its own block of rows.
///
/// # Safety
/// `tile::available()`; `c` is valid for reads and writes of `m * n` floats and aliases
/// neither `a` nor `b`; `a.fits(m, k)` and `b.fits(k, n)`.
pub unsafe fn sgemm_rows(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    accumulate: bool,
    a: MatRef,
    b: MatRef,
) {
    // SAFETY: within this function's `# Safety` contract, which the caller upholds.
    unsafe {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                std::ptr::write_bytes(c, 0, m * n);
            }
            return;
        }
        let c = SendPtr(c);
        let in_place_a = reads_in_place(a);
        // Depth blocks shallow enough that all of b's columns fit the L2 share at once (each
        // panel of a is then packed once), but no deeper than a panel of a that stays in L1.
        let width = n.div_ceil(NR) * NR;
        let kc_target = (B_BLOCK_BYTES / 4 / width).clamp(MIN_KC, KC);
        let blocks = k.div_ceil(kc_target);
        let kc_full = k.div_ceil(blocks);
        let nc = (B_BLOCK_BYTES / 4 / kc_full / NR).max(1) * NR;
        let panels_a = m.div_ceil(MR);
        let tasks = rayon::current_num_threads().clamp(1, panels_a);
        let per_task = panels_a.div_ceil(tasks);
        (0..tasks).into_par_iter().for_each(|t| {
            let panels = t * per_task..((t + 1) * per_task).min(panels_a);
            let mut pa = vec![0f32; MR * kc_full];
            let mut pb = vec![0f32; nc.min(width) * kc_full];
            for block in 0..blocks {
                let p0 = block * kc_full;
                let kc = kc_full.min(k - p0);
                // Later depth blocks add to what the first wrote.
                let acc = accumulate || block > 0;
                for j0 in (0..n).step_by(nc) {
                    let panels_b = nc.min(n - j0).div_ceil(NR);
                    for (jp, panel) in pb.chunks_mut(NR * kc).take(panels_b).enumerate() {
                        pack_b(b, n, p0, kc, j0 + jp * NR, panel);
                    }
                    for q in panels.clone() {
                        // Whole panels of `a` are read where they lie; the last, short one is
                        // packed with zero rows.
                        let in_place = (q + 1) * MR <= m && in_place_a;
                        if !in_place {
                            pack_a(a, m, q * MR, p0, kc, &mut pa[..MR * kc]);
                        }
                        for (jp, bp) in pb.chunks(NR * kc).take(panels_b).enumerate() {
                            let at = (q * MR, j0 + jp * NR);
                            // SAFETY: the caller's contract on c and a; this task alone writes
                            // rows of its panels, and the tile stays inside (m, n).
                            if in_place {
                                tile_in_place(kc, a, p0, bp, c.get(), (m, n), at, acc);
                            } else {
                                tile(kc, &pa, bp, c.get(), (m, n), at, acc);
                            }
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows short of a tile and of a task's share, columns short of a panel and wider than
    /// one L2 block, several depth blocks, `a` read in place and packed (a stride of 512).
    #[test]
    fn matches_naive_at_every_edge() {
        if !tile::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let shapes = [
            (13, 40, 64),
            (101, 517, 300),
            (50, 2000, 600),
            (97, 33, 1100),
            (30, 64, 512),
        ];
        tile::tests::matches_naive(sgemm_rows, &shapes);
        // No depth: zeros.
        let mut c = vec![f32::NAN; 60 * 40];
        let (a, b) = (MatRef::rows(&[], 0), MatRef::rows(&[], 40));
        // SAFETY: available() above; c is (60, 40); empty operands fit a depth of 0.
        unsafe { sgemm_rows(60, 40, 0, c.as_mut_ptr(), false, a, b) };
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
