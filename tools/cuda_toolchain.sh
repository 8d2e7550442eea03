#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs, from PyPI wheels, into one folder
# (default .tools/cuda), so a machine without a GPU or a system CUDA can build the CUDA binary:
# nvcc (with cicc from nvidia-nvvm), the CUDA headers, and the libraries the binary links against (cuBLAS, cuRAND, NVRTC,
# and a stub of the driver's libcuda.so; the real driver is found at run time).
#
# CUDA 13.0: its wheels are the first with nvcc in them (the 12.x nvcc wheels carry only
# ptxas); a 13.0 binary runs on drivers 580 and newer. Prints the environment to build with;
# `make build-cuda` uses it.
set -euo pipefail

ROOT=${1:-.tools/cuda}
PYTHON=${PYTHON:-python3}
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)
SITE=$ROOT/wheels
CUDA=$SITE/nvidia/cu13

if [ ! -x "$CUDA/bin/nvcc" ] || [ ! -e "$ROOT/.complete" ]; then
    rm -rf "$SITE"
    "$PYTHON" -m pip install --quiet --no-deps --target "$SITE" \
        nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96 \
        nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 \
        nvidia-curand==10.4.0.35 nvidia-nvvm==13.0.88 \
        || { echo "cuda-toolchain: pip could not install the CUDA 13.0 wheels (is PyPI reachable?)" >&2; exit 1; }
fi

# The wheels ship versioned sonames only (libcublas.so.13); the linker wants libcublas.so.
LIB=$ROOT/lib64
mkdir -p "$LIB"
for so in "$CUDA"/lib/lib*.so.*; do
    base=$(basename "$so")
    ln -sf "$so" "$LIB/${base%%.so.*}.so"
done

# No wheel carries libcuda.so (the driver). Link against a stub that defines every driver-API
# symbol cudarc declares and has the driver's soname, so the binary loads the real one.
if [ ! -e "$LIB/libcuda.so" ]; then
    bindings=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -path '*cudarc-*/src/driver/sys/mod.rs' | sort | tail -1)
    if [ -z "$bindings" ]; then
        echo "cuda-toolchain: cudarc's sources are not in the cargo registry yet: run \`cargo fetch\` first" >&2
        exit 1
    fi
    grep -oE 'fn cu[A-Za-z0-9_]+' "$bindings" | sed 's/^fn //' | sort -u |
        sed 's/.*/void &(void) {}/' > "$ROOT/libcuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LIB/libcuda.so" "$ROOT/libcuda_stub.c"
fi

# nvcc looks for headers and libraries beside its bin/ (nvcc.profile: $(TOP)/include, lib64).
ln -sfn "$LIB" "$CUDA/lib64"
touch "$ROOT/.complete"

"$CUDA/bin/nvcc" --version | tail -2 >&2
cat <<EOF
export PATH=$CUDA/bin:\$PATH
export CUDA_ROOT=$CUDA
export CUDA_PATH=$CUDA
export LIBRARY_PATH=$LIB\${LIBRARY_PATH:+:\$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
EOF
