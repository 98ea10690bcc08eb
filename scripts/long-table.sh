#!/usr/bin/env bash
# Reproduces the README's long-answer table: every policy on the trained long-answer model
# (models/long-tasks) over its held-out tasks (tasks/long-heldout.jsonl), at gen 64 and 128,
# with one block (block = gen) and with blocks of 32. Exact match, tokens/s, speedup over
# no-cache, forwards per task, recompute fraction, and how often EOS was committed before the
# answer was complete. Per-task-kind accuracy goes to stderr (-v).
#
#   scripts/long-table.sh [--limit N] [other d2c eval flags]
#   GENS=128 BLOCKS=32 scripts/long-table.sh   (one canvas and block length only)
#   LIMIT=160 scripts/long-table.sh       (every held-out task; the default, 100, is the first
#                                          100 lines: 50 per kind, the file is round-robin)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
POLICIES=(
  policies/vanilla.pol
  policies/vanilla.pol:certainty_prior=true
  policies/parallel.pol
  policies/fast-dllm-prefix.pol
  policies/fast-dllm-dual.pol
  policies/dllm-cache.pol
  policies/d2cache.pol
  policies/d2cache-fixed.pol
  policies/d2cache-parallel.pol
)
args=()
for p in "${POLICIES[@]}"; do args+=(--policy "$p"); done
for gen in ${GENS:-64 128}; do
  for block in ${BLOCKS:-$gen 32}; do
    echo
    echo "### gen $gen, block $block"
    echo
    target/release/d2c eval --model models/long-tasks --tasks tasks/long-heldout.jsonl \
      --set gen_length=$gen --set block_length=$block --limit "${LIMIT:-100}" -v --markdown "${args[@]}" "$@"
  done
done
