//! CPU linear algebra for f32: matrix views in, results out. Nothing here knows about
//! translation; `model`, `loss` and `optim` use it, and it uses nothing of theirs (only
//! `rayon` and the `gemm` crate).
//!
//! - [`MatRef`]: a strided read-only view, so transposes and slices cost no copy.
//! - [`gemm`] / [`gemm_new`]: `c = [c +] a . b`, routed by shape to the kernel measured
//!   fastest for it (`sgemm` for a narrow `a` against a wide `b`, `row_gemm` for a tall `a`
//!   read in place, else the `gemm` crate).
//! - [`weight_grads`]: `dGᵀ . [x | h]` and the column sums of `dG` in one pass (an LSTM
//!   layer's weight and bias gradients).
//! - [`PackedWt`] and [`matmul_wt`]: `x . wᵀ` for a few rows against weights packed once
//!   (search), or read row by row (fewer than six rows).
//! - [`column_sums`]; [`vexp`]: exp, sigmoid and tanh over slices; [`isa`]: which vector
//!   instructions this CPU has; [`scratch`]: reused buffers that are overwritten whole.
//! - `cuda_view` (feature `cuda`): the contiguous views every CUDA kernel launch reads.
//!
//! Inside, the modules build on each other one way: `isa` <- `vexp`; `matrix` <- `tile`
//! (the 12 x 32 AVX-512 register tile and its packing) <- `sgemm`, `row_gemm` <- `gemm` <-
//! `weight_grad`; `isa` <- `packed`; `rowdot` and `scratch` stand alone.

pub mod isa;
pub mod scratch;
pub mod vexp;

#[cfg(feature = "cuda")]
pub mod cuda_view;

mod column_sums;
mod gemm;
mod matrix;
mod packed;
mod row_gemm;
mod rowdot;
mod sgemm;
mod tile;
mod weight_grad;

pub use column_sums::column_sums;
pub use gemm::{gemm, gemm_new};
pub use matrix::MatRef;
pub use packed::PackedWt;
pub use rowdot::matmul_wt;
pub use weight_grad::{weight_grads, Operand};
