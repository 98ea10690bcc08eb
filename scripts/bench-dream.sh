#!/usr/bin/env bash
# The README's Dream speed rows: a randomly initialised Dream-shaped model (Qwen2 layout:
# hidden 1024, 8 layers, 16 query / 4 K/V heads, q/k/v bias, SwiGLU 2816, vocab 32768),
# prompt 128, gen 256, block 32, the shipped cache policies against no-cache, in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
[ -f bench-model-dream/model.safetensors ] || target/release/d2c make-model --family dream --out bench-model-dream --d-model 1024 --layers 8 --heads 16 --kv-heads 4 --mlp-hidden 2816 --vocab 32768
target/release/d2c bench --model bench-model-dream --prompt-len 128 --gen-length 256 --block-length 32 --markdown \
  --policies policies/fast-dllm-prefix.pol policies/fast-dllm-dual.pol policies/d2cache.pol policies/dllm-cache.pol "$@"
