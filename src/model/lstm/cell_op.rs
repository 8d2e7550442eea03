//! One LSTM cell step for a whole batch: the forward on slices (the sequence op's CPU side)
//! and the gradient as one Candle op, which the sequence op's backward runs once per step
//! (on the GPU one fused kernel, `lstm_cell_bwd` in src/kernels/cuda/lstm_cell.cu, instead
//! of ~20 small Candle ops). The CPU implementation is the same math in plain loops: what
//! the op does where no kernel is compiled in, and what the tests hold it to.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape};

use crate::tensor_data::cpu_f32;

/// `gates (R, 4H)`, `c_prev (R, H)` and the gradient of `[h | c]` `(R, 2H)` ->
/// `(R, 5H)` = `[d gates (4H) | d c_prev (H)]`. Recomputes the activations from `gates`.
pub struct LstmCellGradOp;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The activations of one row's unit `j`: (i, f, g, o).
fn activations(a: &[f32], hidden: usize, j: usize) -> [f32; 4] {
    [
        sigmoid(a[j]),
        sigmoid(a[hidden + j]),
        a[2 * hidden + j].tanh(),
        sigmoid(a[3 * hidden + j]),
    ]
}

/// Rows and hidden size from `gates (R, 4H)` and `c_prev (R, H)`.
fn dims(gates: &Layout, c_prev: &Layout) -> candle_core::Result<(usize, usize)> {
    let (rows, four_h) = gates.shape().dims2()?;
    let (c_rows, hidden) = c_prev.shape().dims2()?;
    if c_rows != rows || four_h != 4 * hidden {
        candle_core::bail!(
            "lstm cell: gates {:?} do not match c_prev {:?}",
            gates.shape(),
            c_prev.shape()
        );
    }
    Ok((rows, hidden))
}

/// Rows and hidden size of the gradient op's inputs, checking the gradient is `(R, 2H)`.
fn grad_dims(
    gates: &Layout,
    c_prev: &Layout,
    grad: &Layout,
) -> candle_core::Result<(usize, usize)> {
    let (rows, hidden) = dims(gates, c_prev)?;
    if grad.shape().dims() != [rows, 2 * hidden] {
        candle_core::bail!(
            "lstm cell gradient: expected ({rows}, {}), got {:?}",
            2 * hidden,
            grad.shape()
        );
    }
    Ok((rows, hidden))
}

fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    cpu_f32(s, l, what).map_err(candle_core::Error::wrap)
}

/// One cell step on slices: `gates (R, 4H)` pre-activations and `c_prev (R, H)` ->
/// `(R, 2H)` = `[h | c]` (the sequence op's CPU implementation).
pub(super) fn cell_forward(gates: &[f32], c_prev: &[f32], hidden: usize) -> Vec<f32> {
    let rows = c_prev.len() / hidden.max(1);
    let mut out = vec![0f32; rows * 2 * hidden];
    for r in 0..rows {
        let a = &gates[r * 4 * hidden..(r + 1) * 4 * hidden];
        let o_row = &mut out[r * 2 * hidden..(r + 1) * 2 * hidden];
        for j in 0..hidden {
            let [i, f, g, o] = activations(a, hidden, j);
            let c = f * c_prev[r * hidden + j] + i * g;
            o_row[j] = o * c.tanh();
            o_row[hidden + j] = c;
        }
    }
    out
}

/// The backward on slices (the CPU implementation).
fn cell_backward(gates: &[f32], c_prev: &[f32], grad: &[f32], hidden: usize) -> Vec<f32> {
    let rows = c_prev.len() / hidden.max(1);
    let mut out = vec![0f32; rows * 5 * hidden];
    for r in 0..rows {
        let a = &gates[r * 4 * hidden..(r + 1) * 4 * hidden];
        let d = &mut out[r * 5 * hidden..(r + 1) * 5 * hidden];
        for j in 0..hidden {
            let [i, f, g, o] = activations(a, hidden, j);
            let cp = c_prev[r * hidden + j];
            let tc = (f * cp + i * g).tanh();
            let dh = grad[r * 2 * hidden + j];
            let dc = grad[r * 2 * hidden + hidden + j] + dh * o * (1.0 - tc * tc);
            d[j] = dc * g * i * (1.0 - i);
            d[hidden + j] = dc * cp * f * (1.0 - f);
            d[2 * hidden + j] = dc * i * (1.0 - g * g);
            d[3 * hidden + j] = dh * tc * o * (1.0 - o);
            d[4 * hidden + j] = dc * f;
        }
    }
    out
}

impl CustomOp3 for LstmCellGradOp {
    fn name(&self) -> &'static str {
        "lstm-cell-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, hidden) = grad_dims(l1, l2, l3)?;
        let out = cell_backward(
            f32_data(s1, l1, "gates")?,
            f32_data(s2, l2, "c_prev")?,
            f32_data(s3, l3, "cell gradient")?,
            hidden,
        );
        Ok((CpuStorage::F32(out), Shape::from((rows, 5 * hidden))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (rows, hidden) = grad_dims(l1, l2, l3)?;
        let out = super::cell_cuda::launch(
            "lstm_cell_bwd",
            &[(s1, l1), (s2, l2), (s3, l3)],
            rows * 5 * hidden,
            rows,
            hidden,
        )?;
        Ok((out, Shape::from((rows, 5 * hidden))))
    }
}
