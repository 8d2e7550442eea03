//! Launching the LSTM cell kernels (src/kernels/cuda/lstm_cell.cu, PTX built by build.rs) on
//! the tensors' CUDA device: one thread per (row, unit).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout};

use crate::kernels::cuda_view::view;

/// The kernels' PTX, compiled at build time.
pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/lstm_cell.ptx"));

/// Runs kernel `name` over `inputs` (contiguous f32) into a new buffer of `out_len` floats;
/// the kernel's last arguments are `rows` and `hidden`.
pub fn launch(
    name: &str,
    inputs: &[(&CudaStorage, &Layout)],
    out_len: usize,
    rows: usize,
    hidden: usize,
) -> candle_core::Result<CudaStorage> {
    let dev = inputs[0].0.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_lstm_cell", PTX)?;
    let views = inputs
        .iter()
        .map(|(s, l)| view::<f32>(name, s, l))
        .collect::<candle_core::Result<Vec<_>>>()?;
    // SAFETY: the kernel writes every element of `out` (one thread per row and unit, each
    // writing its 2 or 5 outputs).
    let out = unsafe { dev.alloc::<f32>(out_len)? };
    let (rows_arg, hidden_arg) = (rows as u32, hidden as u32);
    let mut builder = func.builder();
    for v in &views {
        builder.arg(v);
    }
    builder.arg(&out);
    builder.arg(&rows_arg);
    builder.arg(&hidden_arg);
    let cfg = LaunchConfig::for_num_elems((rows * hidden) as u32);
    // SAFETY: argument types and order match the kernel's signature.
    unsafe { builder.launch(cfg) }.w()?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}
