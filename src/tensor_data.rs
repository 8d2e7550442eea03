//! The f32 data of a Candle tensor's CPU storage as a slice, for the custom ops that run the
//! kernels on it (the fused LSTM layer, the output layer with its loss, the optimizer).

use candle_core::{CpuStorage, Layout, Storage};

use crate::error::{Error, Result};

/// The f32 data of a contiguous CPU storage.
pub fn cpu_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        return Err(Error::Config(format!(
            "{what}: the fused CPU kernels need f32 tensors"
        )));
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(Error::Config(format!(
            "{what}: the fused CPU kernels need a contiguous tensor"
        ))),
    }
}

/// The f32 data of a contiguous tensor's storage, when it lives on the CPU.
pub fn storage_f32<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => cpu_f32(cpu, layout, what),
        _ => Err(Error::Config(format!(
            "{what}: this fused kernel runs on the CPU only"
        ))),
    }
}
