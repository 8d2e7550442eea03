//! Launching the optimizer kernels (src/kernels/cuda/optimizer.cu, PTX built by build.rs):
//! one thread per element of the parameter, updated in place.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout};

use crate::kernels::cuda_view::{contiguous_range, view};

/// The kernels' PTX, compiled at build time.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/optimizer.ptx"));

/// Runs kernel `name` on `dst` (updated in place) with the same-sized `srcs`; the kernel's
/// arguments are `dst, srcs.., n, scalars..`.
pub fn launch(
    name: &str,
    (dst, dst_l): (&mut CudaStorage, &Layout),
    srcs: &[(&CudaStorage, &Layout)],
    scalars: &[f32],
) -> candle_core::Result<()> {
    let dev = dst.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_optimizer", PTX)?;
    let dst_range = contiguous_range(name, dst_l)?;
    let n = dst_range.len();
    let views = srcs
        .iter()
        .map(|(s, l)| {
            let v = view::<f32>(name, s, l)?;
            if v.len() != n {
                candle_core::bail!("{name}: operands must have the parameter's size");
            }
            Ok(v)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mut out = dst.as_cuda_slice_mut::<f32>()?.slice_mut(dst_range);
    let n_arg = n as u32;
    let mut builder = func.builder();
    builder.arg(&mut out);
    for v in &views {
        builder.arg(v);
    }
    builder.arg(&n_arg);
    for s in scalars {
        builder.arg(s);
    }
    if n > 0 {
        // SAFETY: argument types and order match the kernel's signature.
        unsafe { builder.launch(LaunchConfig::for_num_elems(n as u32)) }.w()?;
    }
    Ok(())
}

/// Threads per block, and at most this many blocks, for `sum_squares`.
const SUM_THREADS: u32 = 256;
const SUM_BLOCKS: u32 = 1024;

/// `sums[slot] += sum(g^2)` with the `sum_squares` kernel.
pub fn sum_squares_into(
    (sums, sums_l): (&mut CudaStorage, &Layout),
    (g, gl): (&CudaStorage, &Layout),
    slot: usize,
) -> candle_core::Result<()> {
    let name = "sum_squares";
    let dev = sums.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_optimizer", PTX)?;
    let sums_range = contiguous_range(name, sums_l)?;
    if slot >= sums_range.len() {
        candle_core::bail!("{name}: slot {slot} outside {} sums", sums_range.len());
    }
    let g = view::<f32>(name, g, gl)?;
    let n = g.len();
    let mut out = sums.as_cuda_slice_mut::<f32>()?.slice_mut(sums_range);
    let (n_arg, slot_arg) = (n as u32, slot as u32);
    let mut builder = func.builder();
    builder.arg(&mut out);
    builder.arg(&g);
    builder.arg(&n_arg);
    builder.arg(&slot_arg);
    let blocks = (n as u32).div_ceil(SUM_THREADS).clamp(1, SUM_BLOCKS);
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (SUM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    if n > 0 {
        // SAFETY: argument types and order match the kernel's signature.
        unsafe { builder.launch(cfg) }.w()?;
    }
    Ok(())
}
