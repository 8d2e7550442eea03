//! Column sums of a row-major matrix (the bias gradients: a sum of the gate or logit
//! gradients over all rows).

use rayon::prelude::*;

/// The column sums of a row-major `(rows, cols)` matrix, `(cols)`: blocks of columns in
/// parallel, each read row by row (contiguous runs, one pass over the data in all).
pub fn column_sums(data: &[f32], cols: usize) -> Vec<f32> {
    const BLOCK: usize = 256;
    let mut out = vec![0f32; cols];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(k, sums)| {
        let span = k * BLOCK..k * BLOCK + sums.len();
        for row in data.chunks_exact(cols) {
            for (s, v) in sums.iter_mut().zip(&row[span.clone()]) {
                *s += v;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_sums_match_naive() {
        for (rows, cols) in [(3, 700), (45, 33), (1, 1), (0, 5)] {
            let a: Vec<f32> = (0..rows * cols).map(|i| (i % 17) as f32).collect();
            let sums = column_sums(&a, cols);
            for (c, s) in sums.iter().enumerate() {
                let want: f32 = (0..rows).map(|r| a[r * cols + c]).sum();
                assert_eq!(*s, want, "({rows}, {cols}) column {c}");
            }
        }
    }
}
