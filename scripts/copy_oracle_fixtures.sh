#!/usr/bin/env bash
# Copies the reference-parity fixtures from ../shared/oracle (produced by the authors' Python
# reference, see that folder's README) into tests/fixtures so the suite does not depend on it:
# the LLaDA set (tiny-llada/, traces/) and the Dream set (dream/tiny-dream/, dream/traces/).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/../shared/oracle}
mkdir -p "$here/tests/fixtures/traces" "$here/tests/fixtures/tiny-llada" "$here/tests/fixtures/dream/traces" "$here/tests/fixtures/tiny-dream"
cp "$src"/tiny-llada/{config.json,generation_config.json,model.safetensors} "$here/tests/fixtures/tiny-llada/"
cp "$src"/traces/*.json "$here/tests/fixtures/traces/"
cp "$src"/dream/tiny-dream/{config.json,generation_config.json,model.safetensors} "$here/tests/fixtures/tiny-dream/"
cp "$src"/dream/traces/*.json "$here/tests/fixtures/dream/traces/"
cp "$src"/README.md "$here/tests/fixtures/ORACLE_README.md"
echo "copied $(ls "$src"/traces/*.json | wc -l) LLaDA and $(ls "$src"/dream/traces/*.json | wc -l) Dream trace files with their tiny checkpoints from $src"
