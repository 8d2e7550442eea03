//! Launching the sequence op's forward on the GPU: per step one recurrent product through
//! Candle's cuBLAS matmul and one `lstm_seq_step` kernel (src/kernels/cuda/lstm_cell.cu)
//! that adds the input projection, runs the cell, keeps padded rows' state and writes the
//! step's h, c and gate pre-activations into the op's output.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaStorage, Layout};

use super::cell_cuda::PTX;
use crate::kernels::cuda_view::{contiguous_range, view};

/// `xw (T, B, 4H)`, `w_hh (4H, H)`, `hc0 (2, B, H)` and the padding flags `(T, B, 1)` ->
/// the op's output `[hs | cs | gates]`, `T * B * 6H` floats.
pub fn forward(
    (xw, xl): (&CudaStorage, &Layout),
    (w, wl): (&CudaStorage, &Layout),
    (hc0, hl): (&CudaStorage, &Layout),
    mask: Option<(&CudaStorage, &Layout)>,
    (steps, batch, hidden): (usize, usize, usize),
) -> candle_core::Result<CudaStorage> {
    let name = "lstm_seq_step";
    let dev = xw.device().clone();
    let func = dev.get_or_load_custom_func(name, "nmt_lstm_cell", PTX)?;
    let bh = batch * hidden;
    let tbh = steps * bh;
    // `h_prev . W_hhᵀ`: W_hh read transposed in place.
    contiguous_range(name, wl)?;
    let w_t = wl.transpose(0, 1)?;
    let h0_start = contiguous_range(name, hl)?.start;
    // SAFETY: step t's kernel writes h, c and the gates of every row at step t, so every
    // element is written before the op returns (and none is read before it is written:
    // step t reads step t - 1's h and c only).
    let out = unsafe { dev.alloc::<f32>(6 * tbh)? };
    let mut out = CudaStorage::wrap_cuda_slice(out, dev.clone());
    let (steps_arg, rows_arg, hidden_arg) = (steps as u32, batch as u32, hidden as u32);
    let has_mask = u32::from(mask.is_some());
    for t in 0..steps {
        let hw = if t == 0 {
            let l = Layout::contiguous_with_offset((batch, hidden), h0_start);
            hc0.matmul(w, (1, batch, 4 * hidden, hidden), &l, &w_t)?
        } else {
            let l = Layout::contiguous_with_offset((batch, hidden), (t - 1) * bh);
            out.matmul(w, (1, batch, 4 * hidden, hidden), &l, &w_t)?
        };
        let x = view::<f32>(name, xw, xl)?;
        let h0c0 = view::<f32>(name, hc0, hl)?;
        let m = match mask {
            Some((s, l)) => view::<f32>(name, s, l)?,
            // Never read (has_mask is 0): any buffer fills the slot.
            None => view::<f32>(name, xw, xl)?,
        };
        let hw = hw.as_cuda_slice::<f32>()?;
        let dst = out.as_cuda_slice_mut::<f32>()?;
        let t_arg = t as u32;
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(hw);
        builder.arg(&h0c0);
        builder.arg(&m);
        builder.arg(dst);
        builder.arg(&t_arg);
        builder.arg(&steps_arg);
        builder.arg(&rows_arg);
        builder.arg(&hidden_arg);
        builder.arg(&has_mask);
        if bh > 0 {
            // SAFETY: argument types and order match the kernel's signature.
            unsafe { builder.launch(LaunchConfig::for_num_elems(bh as u32)) }.w()?;
        }
    }
    Ok(out)
}
