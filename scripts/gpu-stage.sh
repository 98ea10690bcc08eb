#!/usr/bin/env bash
# Run here (no GPU needed): builds the CUDA binaries (scripts/build-cuda.sh) and stages what the
# device check (scripts/gpu-check.sh) needs in the ignored folder .gpu/: the d2c binary and the
# parity test binary, stripped and xz-compressed (74 MB stripped is over the device tool's
# 64 MiB; about 12 MB compressed). The fixtures and policies travel with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-cuda.sh
D2C_CARGO=test scripts/build-cuda.sh --test parity --no-run
rm -rf .gpu && mkdir -p .gpu
for pair in "d2c:target/cuda/release/d2c" "parity:$(ls -t target/cuda/release/deps/parity-* | grep -v '\.d$' | head -1)"; do
  name=${pair%%:*}; bin=${pair#*:}
  cp "$bin" ".gpu/$name" && strip ".gpu/$name" && xz -T2 -f ".gpu/$name"
done
du -sh .gpu/*
