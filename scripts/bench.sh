#!/usr/bin/env bash
# Reproduces the README's speed table: a randomly initialised LLaDA-shaped model
# (d_model 1024, 8 layers, 16 heads, SwiGLU 2816, vocab 32768), prompt 128, gen 256, block 32,
# every shipped cache policy against no-cache, in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
[ -f bench-model/model.safetensors ] || target/release/d2c make-model --out bench-model --d-model 1024 --layers 8 --heads 16 --mlp-hidden 2816 --vocab 32768
target/release/d2c bench --model bench-model --prompt-len 128 --gen-length 256 --block-length 32 --markdown \
  --policies policies/fast-dllm-prefix.pol policies/fast-dllm-dual.pol policies/d2cache.pol policies/d2cache-fixed.pol \
             policies/d2cache.pol:block_length=256 policies/dllm-cache.pol "$@"
