//! Launching the ranking kernel (src/kernels/cuda/top_k.cu, PTX built by build.rs) on the
//! logits' CUDA device: one block of 256 threads per row.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout};

use crate::kernels::cuda_view::view;

/// The kernel's PTX, compiled at build time.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/top_k.ptx"));

/// Threads per row: enough to keep a row's reads coalesced at every vocabulary size.
const THREADS: u32 = 256;

/// `row_top_k` over `logits (rows, vocab)` f32 and `bases (rows)` f32 into a new
/// `(rows, 2k)` buffer; `banned` None is the kernel's `NONE`.
pub fn launch(
    (logits, ll): (&CudaStorage, &Layout),
    (bases, bl): (&CudaStorage, &Layout),
    (rows, vocab): (usize, usize),
    k: usize,
    banned: Option<u32>,
) -> candle_core::Result<CudaStorage> {
    let name = "row_top_k";
    let dev = logits.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_top_k", PTX)?;
    let x = view::<f32>(name, logits, ll)?;
    let b = view::<f32>(name, bases, bl)?;
    // SAFETY: the kernel writes all 2k entries of every row (picks, then empty entries
    // once a row has none left).
    let out = unsafe { dev.alloc::<f32>(rows * 2 * k)? };
    let (rows_arg, vocab_arg, k_arg) = (rows as u32, vocab as u32, k as u32);
    let banned_arg = banned.unwrap_or(u32::MAX);
    let mut builder = func.builder();
    builder.arg(&x);
    builder.arg(&b);
    builder.arg(&out);
    builder.arg(&rows_arg);
    builder.arg(&vocab_arg);
    builder.arg(&k_arg);
    builder.arg(&banned_arg);
    let cfg = LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    if rows > 0 {
        // SAFETY: argument types and order match the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}
