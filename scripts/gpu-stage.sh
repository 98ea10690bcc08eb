#!/usr/bin/env bash
# Run here (no GPU needed): builds the CUDA binaries (scripts/build-cuda.sh) and stages what the
# device check (scripts/gpu-check.sh) needs in the ignored folder .gpu/: the d2c binary and the
# parity test binary, stripped. The fixtures and policies travel with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-cuda.sh
D2C_CARGO=test scripts/build-cuda.sh --test parity --no-run
mkdir -p .gpu
cp target/cuda/release/d2c .gpu/d2c
cp "$(ls -t target/cuda/release/deps/parity-* | grep -v '\.d$' | head -1)" .gpu/parity
strip .gpu/d2c .gpu/parity
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
du -sh .gpu/*
