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
