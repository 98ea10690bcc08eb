#!/usr/bin/env bash
# The README's refresh-map pictures (docs/*.svg): d²Cache and Fast-dLLM dual cache on the
# shipped model (blocks of 4 so the block structure shows), and d²Cache at gen 256 on the
# random-weight bench model (scripts/bench.sh writes it; skipped when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
mkdir -p docs
for p in d2cache fast-dllm-dual; do
  target/release/d2c run --policy "policies/$p.pol" --prompt "sort 9 4 7 1 3 =" --block-length 4 -q \
    --svg "docs/refresh-$p.svg"
done
if [ -f bench-model/model.safetensors ]; then
  target/release/d2c run --model bench-model --policy policies/d2cache.pol --prompt-ids "$(seq -s, 1 128)" \
    --gen-length 256 --block-length 32 -q --svg docs/refresh-d2cache-gen256.svg
fi
ls -l docs/*.svg
