//! A cache-blocked f32 matrix product for a narrow `a` against a wide `b`, with an AVX-512
//! register tile: the output layer's logits, `h (N, H) . Wᵀ (H, V)` with V in the thousands.
//! There the `gemm` crate reached 192-205 GFLOP/s on 2 threads and this 210-216 (512/16k).
//!
//! The layout is the usual one (Goto; BLIS) arranged for this shape: `a` is packed whole into
//! panels of 12 rows (it is small), each task packs its own block of `b`'s columns into
//! panels of 32 that stay in its core's L2 cache and runs every panel of `a` over them, and a
//! 12 x 32 tile of `c` lives in 24 registers for the whole depth (up to 512), so `c` is
//! written once.

use rayon::prelude::*;

use super::matrix::MatRef;
use super::scratch;
use super::tile::{available, pack_a, pack_b, tile, SendPtr, KC, MR, NR};

/// Bytes of packed `b` per task block: most of a core's L2 (1 MiB on the machines measured).
const B_BLOCK_BYTES: usize = 640 * 1024;

/// Whether `sgemm` runs here (AVX-512F) and suits the shape: `b` many times wider than `a`
/// is tall, so packing `a` whole is cheap, and enough work to spread over the threads.
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    available() && m >= 2 * MR && n >= 4 * m && k >= 64
}

/// `c (m, n, row-major) = [c +] a (m, k) . b (k, n)`, blocks of `b`'s columns in parallel.
///
/// # Safety
/// `available()`; `c` is valid for reads and writes of `m * n` floats and aliases
/// neither `a` nor `b`; `a.fits(m, k)` and `b.fits(k, n)`.
pub unsafe fn sgemm(
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
        let c = SendPtr(c);
        let blocks = k.div_ceil(KC).max(1);
        let kc_full = k.div_ceil(blocks);
        // Columns per task block: a multiple of the tile width that fills the L2 share.
        let nc = (B_BLOCK_BYTES / 4 / kc_full.max(1) / NR).max(1) * NR;
        let panels_a = m.div_ceil(MR);
        // Packing writes every slot the tiles read (`scratch` says why no zero fill).
        let mut pa = scratch::take(panels_a * MR * kc_full);
        for block in 0..blocks {
            let p0 = block * kc_full;
            let kc = kc_full.min(k - p0);
            pa.par_chunks_mut(MR * kc_full)
                .enumerate()
                .for_each(|(q, panel)| pack_a(a, m, q * MR, p0, kc, panel));
            // Later depth blocks add to what the first wrote.
            let acc = accumulate || block > 0;
            let pa = &pa;
            // One buffer for b's block per worker, not per block: pack_b writes all of it (zeros
            // past n), so a reused one needs no zero fill (50 blocks of 640 KiB a step at 16k).
            let blocks_b = (0..n.div_ceil(nc)).into_par_iter();
            blocks_b.for_each_init(Vec::new, |pb, jb| {
                let j0 = jb * nc;
                let panels_b = nc.min(n - j0).div_ceil(NR);
                pb.resize(panels_b * NR * kc, 0.0);
                for (jp, panel) in pb.chunks_mut(NR * kc).enumerate() {
                    pack_b(b, n, p0, kc, j0 + jp * NR, panel);
                }
                for q in 0..panels_a {
                    let ap = &pa[q * MR * kc_full..][..MR * kc];
                    for (jp, bp) in pb.chunks(NR * kc).enumerate() {
                        // SAFETY: the caller's contract on c; tile stays inside (m, n).
                        tile(kc, ap, bp, c.get(), (m, n), (q * MR, j0 + jp * NR), acc);
                    }
                }
            });
        }
        scratch::give(pa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tile::tests::matches_naive;

    /// Every tile edge (rows short of 12, columns short of 32), several depth blocks, task
    /// blocks of b.
    #[test]
    fn matches_naive_at_every_edge() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let shapes = [
            (24, 96, 64),
            (25, 130, 70),
            (37, 1000, 1100),
            (30, 7000, 100),
        ];
        matches_naive(sgemm, &shapes);
    }
}
