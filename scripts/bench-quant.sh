#!/usr/bin/env bash
# The README's quantization tables (issue: LLaDA-8B / Dream-7B on a 24 GiB CPU machine):
#  1. per-layer forward time of an LLaDA-8B-width model (2 layers) at 384/64/16 rows for f32,
#     bf16, q8_0, q4_k, extrapolated to 32 layers;
#  2. a full 32-layer LLaDA-8B-shaped model written directly as q4_k and q8_0 GGUF, loaded and
#     decoded (prompt 16, gen 16) with no-cache and d2cache, peak RSS from /usr/bin/time;
#  3. the d1024x8 speed table with f32, q8_0 and q4_k in one process (pass --skip-d1024 to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
D2C=target/release/d2c
[ -f bench-8b-2l/model.safetensors ] || $D2C make-model --preset llada-8b --layers 2 --out bench-8b-2l
echo "## per-layer timing (LLaDA-8B width)"
$D2C bench --model bench-8b-2l --layer-timing --extrapolate-layers 32 --reps 2 --markdown
IDS=$(seq -s, 100 115)
for q in q4_k q8_0; do
  f=bench-8b-32l-$q.gguf
  [ -f $f ] || /usr/bin/time -f "make-model $q: %e s, peak RSS %M KB" $D2C make-model --preset llada-8b --gguf $q --out $f
  for p in vanilla d2cache; do
    echo "## LLaDA-8B shape, 32 layers, $q, $p"
    set_k=(); [ $p = d2cache ] && set_k=(--set current_k=4)
    /usr/bin/time -f "peak RSS (time): %M KB, %e s wall" $D2C run --model $f --policy policies/$p.pol --prompt-ids $IDS \
      --gen-length 16 --block-length 16 "${set_k[@]}" -q 2>&1 | tail -2 || true
  done
done
if [ "${1:-}" != "--skip-d1024" ]; then
  [ -f bench-model/model.safetensors ] || $D2C make-model --out bench-model --d-model 1024 --layers 8 --heads 16 --mlp-hidden 2816 --vocab 32768
  echo "## d1024x8, f32 / q8_0 / q4_k in one process"
  $D2C bench --model bench-model --prompt-len 128 --gen-length 256 --block-length 32 --markdown --dtypes f32,q8_0,q4_k \
    --policies policies/fast-dllm-dual.pol policies/d2cache.pol
fi
