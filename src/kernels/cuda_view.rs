//! What every launch of one of our CUDA kernels reads its tensors through (feature `cuda`):
//! the kernels index plain arrays, so each operand must be contiguous.

use candle_core::cuda_backend::cudarc::driver::CudaView;
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaStorage, Layout};

/// The contiguous range of `l` in its storage; `kernel` names the kernel in the error.
pub fn contiguous_range(kernel: &str, l: &Layout) -> candle_core::Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => candle_core::bail!("{kernel}: operands must be contiguous"),
    }
}

/// The elements of `s` under `l`, as a kernel argument.
pub fn view<'a, T: CudaDType>(
    kernel: &str,
    s: &'a CudaStorage,
    l: &Layout,
) -> candle_core::Result<CudaView<'a, T>> {
    Ok(s.as_cuda_slice::<T>()?.slice(contiguous_range(kernel, l)?))
}
