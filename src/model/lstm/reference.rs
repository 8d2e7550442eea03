//! The LSTM layer in plain Candle ops, one time step at a time: the path on devices other than
//! the CPU, and the oracle the tests compare the fused CPU layer with.

use candle_core::{Tensor, D};

use super::LstmLayer;
use crate::data::batch::StepMask;
use crate::error::Result;

impl LstmLayer {
    /// Runs the layer over the projected input `xw (T, B, 4H)` from `h0, c0 (B, H)`: every
    /// step's `h (T, B, H)` and every step's `c (T, B, H)`.
    pub(super) fn forward_reference(
        &self,
        xw: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
    ) -> Result<(Tensor, Tensor)> {
        let (t_len, _, _) = xw.dims3()?;
        let w_t = self.weight_hh.t()?;
        let sigmoid =
            |x: &Tensor| -> candle_core::Result<Tensor> { (x.neg()?.exp()? + 1.0)?.recip() };
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let (mut hs, mut cs) = (Vec::with_capacity(t_len), Vec::with_capacity(t_len));
        for t in 0..t_len {
            let gates = (xw.get(t)? + h.matmul(&w_t)?)?;
            let parts = gates.chunk(4, D::Minus1)?;
            let i = sigmoid(&parts[0])?;
            let f = sigmoid(&parts[1])?;
            let g = parts[2].tanh()?;
            let o = sigmoid(&parts[3])?;
            let c_new = ((f * &c)? + (i * g)?)?;
            let h_new = (o * c_new.tanh()?)?;
            (h, c) = match mask {
                Some(m) => {
                    let keep = m.tensor.get(t)?; // (B, 1)
                    let skip = (1.0 - &keep)?;
                    (
                        (h_new.broadcast_mul(&keep)? + h.broadcast_mul(&skip)?)?,
                        (c_new.broadcast_mul(&keep)? + c.broadcast_mul(&skip)?)?,
                    )
                }
                None => (h_new, c_new),
            };
            hs.push(h.clone());
            cs.push(c.clone());
        }
        Ok((Tensor::stack(&hs, 0)?, Tensor::stack(&cs, 0)?))
    }
}
