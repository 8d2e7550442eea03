//! `PackedWt` against the definition, and the SIMD tiles against the scalar one.

use super::tiles::{kernel, tile_scalar, TileRows};
use super::*;
use crate::kernels::rowdot::tests::{case, naive};

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
