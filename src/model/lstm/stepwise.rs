//! The LSTM layer one time step at a time in plain Candle ops, differentiated by Candle's
//! autograd: `LstmPath::Reference`, the Metal path and the oracle the tests hold the fused
//! CPU layer and the sequence op to.

use candle_core::Tensor;

use super::reference::reference_cell;
use super::LstmLayer;
use crate::data::batch::StepMask;
use crate::error::Result;

impl LstmLayer {
    /// Runs the layer over the projected input `xw (T, B, 4H)` from `h0, c0 (B, H)` with
    /// the reference cell: every step's `h (T, B, H)` and the last step's `c (B, H)`.
    pub(super) fn forward_steps(
        &self,
        xw: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
    ) -> Result<(Tensor, Tensor)> {
        let t_len = xw.dim(0)?;
        let w_t = self.weight_hh.t()?;
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut hs = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let gates = (xw.get(t)? + h.matmul(&w_t)?)?;
            let (h_new, c_new) = reference_cell(&gates, &c)?;
            (h, c) = match mask {
                // Padded rows keep their state: h = keep * h_new + (1 - keep) * h.
                Some(m) => {
                    let keep = m.tensor.get(t)?; // (B, 1)
                    (
                        (&h + (h_new - &h)?.broadcast_mul(&keep)?)?,
                        (&c + (c_new - &c)?.broadcast_mul(&keep)?)?,
                    )
                }
                None => (h_new, c_new),
            };
            hs.push(h.clone());
        }
        Ok((Tensor::stack(&hs, 0)?, c))
    }
}
