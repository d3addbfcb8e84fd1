#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test (unit tests,
# Monte-Carlo compressor checks, and the integration tests that launch mpirun with
# 1, 2 and 4 ranks). Release mode: the integration tests train to ‖∇f‖² ≤ 1e-10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi-env.sh
cargo build --release --quiet
cargo test --release -- --test-threads=2
