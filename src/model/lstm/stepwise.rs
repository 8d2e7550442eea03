//! The LSTM layer one time step at a time, off the CPU's fused layer: per step one recurrent
//! product (cuBLAS on the GPU) and one cell, either the fused cell op (`cell_op`, the CUDA
//! path) or plain Candle ops (`reference`, the Metal path and the tests' oracle).

use candle_core::Tensor;

use super::LstmLayer;
use crate::data::batch::StepMask;
use crate::error::Result;

/// One cell step: `gates (B, 4H)` pre-activations, `c_prev (B, H)` -> `(h, c)`, each `(B, H)`.
pub(super) type CellFn = fn(&Tensor, &Tensor) -> Result<(Tensor, Tensor)>;

impl LstmLayer {
    /// Runs the layer over the projected input `xw (T, B, 4H)` from `h0, c0 (B, H)` with
    /// `cell`: every step's `h (T, B, H)` and the last step's `c (B, H)`.
    pub(super) fn forward_steps(
        &self,
        xw: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
        cell: CellFn,
    ) -> Result<(Tensor, Tensor)> {
        let t_len = xw.dim(0)?;
        let w_t = self.weight_hh.t()?;
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut hs = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let gates = (xw.get(t)? + h.matmul(&w_t)?)?;
            let (h_new, c_new) = cell(&gates, &c)?;
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
