//! A layer's weights as the fused op reads them: views of PyTorch's `W_ih`, `W_hh` and the
//! summed biases, either inside the Candle op's weight block or in the parameters themselves.

use crate::kernels::MatRef;

/// The op's weight layout, `[w_ih | w_hh | b]` `(4H, I + H + 1)`, from `w_ih (4H, I)`,
/// `w_hh (4H, H)` and `b (4H)`: the gradient of the Candle op's weight input. (Only autograd
/// over the op needs it, the reference the tests hold the CPU step to; training on the CPU
/// takes the parts as they are.)
pub(super) fn weight_block(w_ih: &[f32], w_hh: &[f32], b: &[f32]) -> Vec<f32> {
    let g4 = b.len();
    let (input, h) = (w_ih.len() / g4.max(1), w_hh.len() / g4.max(1));
    assert!(
        w_ih.len() == g4 * input && w_hh.len() == g4 * h,
        "weight_block: W_ih, W_hh and b do not share 4H rows"
    );
    let mut w = Vec::with_capacity(g4 * (input + h + 1));
    for g in 0..g4 {
        w.extend_from_slice(&w_ih[g * input..(g + 1) * input]);
        w.extend_from_slice(&w_hh[g * h..(g + 1) * h]);
        w.push(b[g]);
    }
    w
}

/// A layer's weights as the op reads them: `W_ih (4H, I)` and `W_hh (4H, H)` as views (of
/// the op's weight block, or of the parameters themselves) and `b_ih + b_hh (4H)`.
pub struct Weights<'a> {
    pub(super) w_ih: MatRef<'a>,
    pub(super) w_hh: MatRef<'a>,
    pub(super) bias: Vec<f32>,
    pub(super) input: usize,
}

impl<'a> Weights<'a> {
    /// Views of the op's weight block `[W_ih | W_hh | b] (4H, I + H + 1)`.
    pub fn of_block(w: &'a [f32], hidden: usize) -> Self {
        let g4 = 4 * hidden;
        let stride = w.len() / g4.max(1);
        assert!(
            w.len() == g4 * stride && stride > hidden,
            "LSTM op: the weight block is not (4H, I + H + 1)"
        );
        let input = stride - hidden - 1;
        Weights {
            w_ih: MatRef {
                data: w,
                rs: stride,
                cs: 1,
            },
            w_hh: MatRef {
                data: &w[input..],
                rs: stride,
                cs: 1,
            },
            bias: w.chunks_exact(stride).map(|row| row[stride - 1]).collect(),
            input,
        }
    }

    /// PyTorch's parameters as they are, `w_ih (4H, I)` and `w_hh (4H, H)` row-major, and
    /// the two biases' sum: no weight block to assemble (8 MB a layer at 512).
    pub fn of_parts(w_ih: &'a [f32], w_hh: &'a [f32], bias: Vec<f32>) -> Self {
        let g4 = bias.len();
        let (input, hidden) = (w_ih.len() / g4.max(1), w_hh.len() / g4.max(1));
        assert!(
            w_ih.len() == g4 * input && w_hh.len() == g4 * hidden && g4 == 4 * hidden,
            "LSTM op: W_ih, W_hh and b do not share 4H rows"
        );
        Weights {
            w_ih: MatRef::rows(w_ih, input),
            w_hh: MatRef::rows(w_hh, hidden),
            bias,
            input,
        }
    }

    /// `W_hhᵀ (H, 4H)` as a view.
    pub(super) fn hh_t(&self) -> MatRef<'a> {
        MatRef {
            data: self.w_hh.data,
            rs: self.w_hh.cs,
            cs: self.w_hh.rs,
        }
    }
}
