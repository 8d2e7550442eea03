//! Puts the git revision and the enabled device features into `nmt --version`; with the
//! `cuda` feature, compiles the CUDA kernels to PTX.

fn main() {
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        compile_cuda_kernels();
    }
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut features = vec!["cpu"];
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        features.push("cuda");
    }
    if std::env::var_os("CARGO_FEATURE_METAL").is_some() {
        features.push("metal");
    }
    println!(
        "cargo:rustc-env=NMT_VERSION_INFO={} (git {rev}; devices: {})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        features.join(", ")
    );
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The files of src/kernels/cuda/ (without `.cu`), each loaded as one PTX module.
const CUDA_KERNELS: &[&str] = &["lstm_cell", "cross_entropy", "optimizer", "top_k"];

/// `src/kernels/cuda/*.cu` -> `$OUT_DIR/*.ptx` with nvcc (from PATH, or $NVCC), for the
/// virtual architecture `compute_$CUDA_COMPUTE_CAP` (default 80: runs on A100, H100, H200
/// and newer through the driver's JIT).
fn compile_cuda_kernels() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap = cap.replace('.', "");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-changed=src/kernels/cuda/reduce.cuh");
    for kernel in CUDA_KERNELS {
        let src = format!("src/kernels/cuda/{kernel}.cu");
        println!("cargo:rerun-if-changed={src}");
        let ptx = out.join(format!("{kernel}.ptx"));
        let status = std::process::Command::new(&nvcc)
            .args(["--ptx", "-O3", &format!("-arch=compute_{cap}"), "-o"])
            .arg(&ptx)
            .arg(&src)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("nvcc failed on {src} ({s})"),
            Err(e) => panic!(
                "the cuda feature needs nvcc ({nvcc}: {e}): run `make cuda-toolchain` and build with `make build-cuda`"
            ),
        }
    }
}
