#!/usr/bin/env bash
# README command 1: install what is missing, build the release binary, and train on the
# embedded mushrooms data with `mpirun -n RANKS` (default 2; more are oversubscribed).
# QTRAIN_MPI=mpich does the same with MPICH (build in target-mpich/, mpiexec.mpich).
#   scripts/demo.sh [--ranks N] [any `qtrain demo` flags, e.g. --iters 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=2
if [ "${1:-}" = "--ranks" ]; then ranks=$2; shift 2; fi
bash scripts/setup.sh
source scripts/mpi-env.sh
cargo build --release --quiet
"$QTRAIN_MPIRUN" -n "$ranks" "$QTRAIN_BIN" demo "$@"
