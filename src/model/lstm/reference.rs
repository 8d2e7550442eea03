//! The LSTM cell in plain Candle ops (~20 per step): the cell of the Metal path, and the
//! oracle the tests compare the fused CPU layer and the sequence op with.

use candle_core::{Tensor, D};

use crate::error::Result;

/// One cell step: `gates (B, 4H)` pre-activations, `c_prev (B, H)` -> `(h, c)`, each `(B, H)`.
pub(super) fn reference_cell(gates: &Tensor, c_prev: &Tensor) -> Result<(Tensor, Tensor)> {
    let sigmoid = |x: &Tensor| -> candle_core::Result<Tensor> { (x.neg()?.exp()? + 1.0)?.recip() };
    let parts = gates.chunk(4, D::Minus1)?;
    let i = sigmoid(&parts[0])?;
    let f = sigmoid(&parts[1])?;
    let g = parts[2].tanh()?;
    let o = sigmoid(&parts[3])?;
    let c = ((f * c_prev)? + (i * g)?)?;
    let h = (o * c.tanh()?)?;
    Ok((h, c))
}
