#!/usr/bin/env bash
# Copies the reference-parity fixtures from ../shared/oracle (produced by the authors' Python
# reference, see that folder's README) into tests/fixtures so the suite does not depend on it:
# the LLaDA set (tiny-llada/, traces/) and the Dream set (dream/tiny-dream/, dream/traces/).
# Only the traces of the methods the suite replays are copied (TRACES); the oracle's other
# method traces (§10: WINO) join as d2c learns
# them.
set -euo pipefail
TRACES=${TRACES:-"forward_check.json summary.json nocache_* d2cache_g* dllm_* prefix_* dual_g* eb_* d2cache_eb_* margin_* entropy_* dual_margin_* klass_* dual_klass_* pc_*"}
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/../shared/oracle}
mkdir -p "$here/tests/fixtures/traces" "$here/tests/fixtures/tiny-llada" "$here/tests/fixtures/dream/traces" "$here/tests/fixtures/tiny-dream"
cp "$src"/tiny-llada/{config.json,generation_config.json,model.safetensors,token_freq.json} "$here/tests/fixtures/tiny-llada/"
copy_traces() { # FROM TO
  (cd "$1" && for pat in $TRACES; do for f in $pat; do if [ -f "$f" ]; then cp "$f" "$2/"; fi; done; done)
}
copy_traces "$src/traces" "$here/tests/fixtures/traces"
cp "$src"/dream/tiny-dream/{config.json,generation_config.json,model.safetensors} "$here/tests/fixtures/tiny-dream/"
copy_traces "$src/dream/traces" "$here/tests/fixtures/dream/traces"
cp "$src"/README.md "$here/tests/fixtures/ORACLE_README.md"
echo "copied $(ls "$here"/tests/fixtures/traces/*.json | wc -l) LLaDA and $(ls "$here"/tests/fixtures/dream/traces/*.json | wc -l) Dream trace files with their tiny checkpoints from $src"
