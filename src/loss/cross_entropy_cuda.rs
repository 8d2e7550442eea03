//! Launching the cross-entropy kernels (src/kernels/cuda/cross_entropy.cu, PTX built by
//! build.rs) on the logits' CUDA device: one block of 256 threads per row.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout};

use crate::kernels::cuda_view::view;

/// The kernels' PTX, compiled at build time.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/cross_entropy.ptx"));

/// Threads per row: enough to keep a row's reads coalesced at every vocabulary size.
const THREADS: u32 = 256;

/// Runs kernel `name` with `logits (rows, vocab)` f32, `targets (rows)` u32 and, for the
/// gradient, `gs (rows, 6)` f32, into a new buffer of `out_len` floats.
pub fn launch(
    name: &str,
    (logits, ll): (&CudaStorage, &Layout),
    (targets, tl): (&CudaStorage, &Layout),
    gs: Option<(&CudaStorage, &Layout)>,
    out_len: usize,
    (rows, vocab): (usize, usize),
    eps: f32,
) -> candle_core::Result<CudaStorage> {
    let dev = logits.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_cross_entropy", PTX)?;
    let x = view::<f32>(name, logits, ll)?;
    let t = view::<u32>(name, targets, tl)?;
    let g = match gs {
        Some((s, l)) => Some(view::<f32>(name, s, l)?),
        None => None,
    };
    // SAFETY: each kernel writes every element of `out` (the forward its row's three
    // values, the gradient every element of its row).
    let out = unsafe { dev.alloc::<f32>(out_len)? };
    let (rows_arg, vocab_arg) = (rows as u32, vocab as u32);
    let mut builder = func.builder();
    builder.arg(&x);
    builder.arg(&t);
    if let Some(g) = &g {
        builder.arg(g);
    }
    builder.arg(&out);
    builder.arg(&rows_arg);
    builder.arg(&vocab_arg);
    builder.arg(&eps);
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
