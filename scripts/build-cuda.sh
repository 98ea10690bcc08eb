#!/usr/bin/env bash
# Builds d2c with `--features cuda` on a machine with no CUDA installed: nvcc, the CUDA headers
# and the libraries to link against come from NVIDIA's PyPI wheels, unpacked into the ignored
# folder .cuda/. The binary (target/cuda/release/d2c) links the CUDA driver, cuBLAS, cuRAND,
# NVRTC and the CUDA runtime dynamically: the machine that runs it needs an NVIDIA driver for
# CUDA >= 13.0 (>= 580) and those libraries (CUDA 13: libcublas.so.13, libcublasLt.so.13,
# libcurand.so.10, libnvrtc.so.13, libcudart.so.13) on its loader path; see the README's
# "GPU" section for LD_LIBRARY_PATH when they come from a Python environment (PyTorch cu130).
#
# Why CUDA 13 and the `nvidia-cuda-nvcc` wheel: the `nvidia-cuda-nvcc-cu12` wheels (12.0-12.9)
# ship ptxas alone, no nvcc driver; the first full nvcc on PyPI is CUDA 13's. 13.0 matches the
# GPU machines this project measures on (driver 580, nvcc 13.0).
#
#   scripts/build-cuda.sh                 # compute capability 9.0 (H100/H200)
#   CUDA_COMPUTE_CAP=89 scripts/build-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_VERSION=13.0
WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.5.25
)
root="$PWD/.cuda/root"
# Unpack again whenever the wheel list changes.
if [ "$(cat "$root/.wheels" 2>/dev/null)" != "${WHEELS[*]}" ]; then
  rm -rf .cuda/unpacked && mkdir -p .cuda/wheels .cuda/unpacked
  python3 -m pip download -q --no-deps --only-binary=:all: -d .cuda/wheels "${WHEELS[@]}"
  for w in .cuda/wheels/*.whl; do python3 -m zipfile -e "$w" .cuda/unpacked; done
  rm -rf "$root" && mkdir -p "$root"
  # Every wheel installs under nvidia/cu13/{bin,include,lib,nvvm}: one toolkit-shaped tree.
  cp -a .cuda/unpacked/nvidia/cu13/. "$root/"
  chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
  # The wheels carry versioned sonames only; the linker wants the plain names.
  for so in "$root"/lib/lib*.so.*; do
    base="${so%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
  done
  echo "${WHEELS[*]}" > "$root/.wheels"
fi
if [ ! -f "$root/lib/stubs/libcuda.so" ]; then
  # The driver (libcuda.so.1) ships with the NVIDIA driver, not on PyPI: link against a stub
  # that exports every driver entry point cudarc declares (each answers CUDA_ERROR_NO_DEVICE),
  # with the real library's soname, as
  # the toolkit's own lib/stubs/libcuda.so does. The real driver is loaded at run time.
  mkdir -p "$root/lib/stubs"
  sys=$(cargo metadata --features cuda --format-version 1 2>/dev/null | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="cudarc"))' | xargs dirname)/src/driver/sys/mod.rs
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$sys" | awk '{print "int " $4 "(void) { return 100; }"}' | sort -u > "$root/lib/stubs/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" "$root/lib/stubs/cuda_stub.c"
fi
export CUDA_HOME="$root" CUDA_ROOT="$root" PATH="$root/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION="${CUDA_VERSION/./0}0"
export LIBRARY_PATH="$root/lib:$root/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
"$root/bin/nvcc" --version | tail -2
# D2C_CARGO=test with `--test parity --no-run` builds the parity test binary instead.
cargo "${D2C_CARGO:-build}" --release --features cuda --target-dir target/cuda "$@"
echo "built in target/cuda/release (CUDA $CUDA_VERSION, compute capability $CUDA_COMPUTE_CAP)"
