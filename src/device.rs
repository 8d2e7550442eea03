//! Choosing where tensors live: cpu (default), cuda or metal when built with that feature.

use candle_core::Device;

use crate::error::{Error, Result};

/// The device named by `--device`: `cpu`, `cuda`, `cuda:N` (the N-th GPU, from 0) or `metal`.
pub fn pick(name: &str) -> Result<Device> {
    let unknown = || {
        Error::Config(format!(
            "unknown device `{name}`: use cpu, cuda, cuda:N (N a GPU number from 0) or metal"
        ))
    };
    let (kind, ordinal) = match name.split_once(':') {
        None => (name, 0),
        Some((kind @ ("cuda" | "metal"), n)) => (kind, n.parse().map_err(|_| unknown())?),
        Some(_) => return Err(unknown()),
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if cfg!(feature = "cuda") {
                Device::new_cuda(ordinal).map_err(|e| {
                    Error::Config(format!(
                        "could not open CUDA device {ordinal} ({e}): check the NVIDIA driver (nvidia-smi) and the GPU number, or use --device cpu"
                    ))
                })
            } else {
                Err(Error::Config(
                    "this nmt was built without CUDA: rebuild with `make build-cuda` (cargo build --release --features cuda), or use --device cpu".into(),
                ))
            }
        }
        "metal" => {
            if cfg!(feature = "metal") {
                Device::new_metal(ordinal).map_err(|e| {
                    Error::Config(format!(
                        "could not open Metal device {ordinal} ({e}): check the GPU number, or use --device cpu"
                    ))
                })
            } else {
                Err(Error::Config(
                    "this nmt was built without Metal: rebuild with `cargo build --release --features metal`, or use --device cpu".into(),
                ))
            }
        }
        _ => Err(unknown()),
    }
}

/// Uses `threads` CPU threads for Candle's kernels and ours (0: every core).
pub fn set_threads(threads: usize) {
    let n = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    // Candle reads RAYON_NUM_THREADS; set it before the first tensor op.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // Candle's element-wise ops otherwise run on a second pool of n - 1 threads that spin
    // between ops, on the cores the rayon pool's gemms and LSTM steps need (4-layer training
    // step: backward 141-142 -> 138 ms on 2 cores, more while the machine is busy).
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// The most CPU threads `--threads` may ask for.
pub const MAX_THREADS: usize = 1024;

/// Refuses a `--threads` the machine cannot mean (0 stays: all cores).
pub fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(n) if n > MAX_THREADS => Err(Error::Usage(format!(
            "--threads {n} is more than {MAX_THREADS}; give the number of cores to use, or 0 for all"
        ))),
        _ => Ok(()),
    }
}

/// Runs `f` on a thread of the global pool, after `set_threads(threads)` when given. The
/// kernels fork and join thousands of times a training step: ~18 us each from a thread
/// outside the pool (the work is injected and a sleeping worker woken), ~1 us from inside
/// (4-layer bench step 284-298 -> 268-271 ms). Library callers get the same speed through it.
pub fn run_on_pool<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> T {
    if let Some(n) = threads {
        set_threads(n);
    }
    rayon::scope(|_| f())
}
