//! Mixed precision on the tensor path (CUDA): which products run in a narrower type. The
//! weights stay f32 (the master copy the optimizer updates), and so do their gradients, the
//! optimizer's moments and every element-wise kernel.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the training products are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Every product in f32.
    #[default]
    F32,
    /// f32 products on the tensor cores (cuBLAS's TF32 mode: inputs rounded to 10 bits of
    /// mantissa, f32 accumulation), as PyTorch's cuDNN LSTM runs by default.
    Tf32,
    /// The input projections and the output layer as bf16 products (f32 accumulation), the
    /// other products as in tf32.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Sets this precision up for a process computing on `device`: anything but f32 needs
    /// CUDA (the CPU path is f32 kernels throughout), and switches cuBLAS's f32 products to
    /// TF32 (one switch for the whole process, Candle's).
    pub fn apply(self, device: &Device) -> Result<()> {
        if self != Precision::F32 && !device.is_cuda() {
            return Err(Error::Usage(format!(
                "--precision {}: mixed precision runs on CUDA only (--device cuda); on this device every product is f32, so leave --precision at f32",
                self.name()
            )));
        }
        if device.is_cuda() {
            candle_core::cuda::set_gemm_reduced_precision_f32(self != Precision::F32);
        }
        Ok(())
    }

    /// `x (N, K)` times the transpose of `w (M, K)` -> `(N, M)` f32: a linear layer's
    /// product, in bf16 under `Bf16` (the weight cast first, so the transpose is a view).
    pub fn product_wt(self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Precision::Bf16 => x
                .to_dtype(DType::BF16)?
                .matmul(&w.to_dtype(DType::BF16)?.t()?)?
                .to_dtype(DType::F32)?,
            _ => x.matmul(&w.t()?)?,
        })
    }
}
