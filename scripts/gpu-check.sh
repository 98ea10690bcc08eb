#!/usr/bin/env bash
# The device part of the GPU issue, on a machine with an NVIDIA GPU (driver >= 580, CUDA 13
# libraries from its Python environment), inside about 10 minutes:
#   1. the parity suite on the GPU (f32): which oracle traces agree token for token;
#   2. an LLaDA-8B-shaped random model (32 layers, d_model 4096, bf16 on the GPU), prompt 128,
#      gen 256, block 32: vanilla vs fast-dllm-dual vs d2cache, one process.
# Staged by scripts/gpu-stage.sh (.gpu/d2c.xz, .gpu/parity.xz); run from the repository root:
#   bash scripts/gpu-check.sh            (device tool: carry [".gpu"])
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
# cuBLAS, cuRAND, NVRTC and the CUDA runtime from the Python environment's nvidia wheels.
libs=$(python3 - <<'P'
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = {os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so.*"), recursive=True)}
print(":".join(sorted(dirs)))
P
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for b in d2c parity; do python3 -c "import lzma,sys; open(sys.argv[2],'wb').write(lzma.open(sys.argv[1]).read())" ".gpu/$b.xz" "/tmp/$b" && chmod +x "/tmp/$b"; done
nvidia-smi -L | tee "$OUT/gpu.txt"
ldd /tmp/d2c | grep -E "not found|cublas|cuda" | tee -a "$OUT/gpu.txt"
echo "== parity on the GPU (f32)" | tee "$OUT/parity.txt"
timeout 240 /tmp/parity --test-threads 1 2>&1 | tee -a "$OUT/parity.txt" | grep -E "^test |mismatches|test result"
echo "== LLaDA-8B shape, bf16, p128/g256/b32" | tee "$OUT/bench.txt"
timeout 200 /tmp/d2c --device cpu make-model --preset llada-8b --bf16 --out /tmp/llada8b 2>&1 | tail -2 | tee -a "$OUT/bench.txt"
timeout 300 /tmp/d2c --device cuda bench --model /tmp/llada8b --dtype bf16 --prompt-len 128 --gen-length 256 --block-length 32 \
  --policies policies/fast-dllm-dual.pol policies/d2cache.pol --markdown 2>&1 | tee -a "$OUT/bench.txt"
