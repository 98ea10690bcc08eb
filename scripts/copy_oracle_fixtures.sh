#!/usr/bin/env bash
# Copies the reference-parity fixtures from ../shared/oracle (produced by the authors' Python
# reference, see that folder's README) into tests/fixtures so the suite does not depend on it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/../shared/oracle}
mkdir -p "$here/tests/fixtures/traces" "$here/tests/fixtures/tiny-llada"
cp "$src"/tiny-llada/{config.json,generation_config.json,model.safetensors} "$here/tests/fixtures/tiny-llada/"
cp "$src"/traces/*.json "$here/tests/fixtures/traces/"
cp "$src"/README.md "$here/tests/fixtures/ORACLE_README.md"
echo "copied $(ls "$src"/traces/*.json | wc -l) traces and the tiny LLaDA checkpoint from $src"
