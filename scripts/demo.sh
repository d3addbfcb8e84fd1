#!/usr/bin/env bash
# README command 1: install what is missing, build the release binary, and train on the
# embedded mushrooms data with `mpirun -n RANKS` (default 2; more are oversubscribed).
#   scripts/demo.sh [--ranks N] [any `qtrain demo` flags, e.g. --iters 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=2
if [ "${1:-}" = "--ranks" ]; then ranks=$2; shift 2; fi
bash scripts/setup.sh
cargo build --release --quiet
source scripts/mpi-env.sh
mpirun -n "$ranks" target/release/qtrain demo "$@"
