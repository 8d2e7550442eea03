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
        match self.mask(x.elem_count()) {
            None => Ok(x.clone()),
            Some(mask) => Ok((x * Tensor::from_vec(mask, x.shape(), x.device())?)?),
        }
    }

    /// A fresh mask of `n` factors (0 or 1 / (1 - p)), drawn in the order `apply` draws them;
    /// `None` when nothing is dropped.
    pub fn mask(&mut self, n: usize) -> Option<Vec<f32>> {
        if self.p <= 0.0 {
            return None;
        }
        let keep = 1.0 / (1.0 - self.p);
        Some(
            (0..n)
                .map(|_| {
                    if self.rng.next_f32() < self.p {
                        0.0
                    } else {
                        keep
                    }
                })
                .collect(),
        )
    }
}
