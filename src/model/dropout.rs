//! Dropout with masks from the project's seeded RNG, so a run (and a resumed run) draws the
//! same masks. Used only in training; inference never builds one.

use candle_core::Tensor;

use crate::error::Result;
use crate::rng::Rng;

/// Zeroes each element with probability `p` and scales the rest by 1 / (1 - p).
pub struct Dropout {
    pub rng: Rng,
    pub p: f32,
}

impl Dropout {
    /// `x` with a fresh mask applied (any shape).
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p);
        let n = x.elem_count();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.next_f32() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        Ok((x * mask)?)
    }
}
