#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test (unit tests,
# Monte-Carlo compressor checks, and the integration tests that launch mpirun with
# 1, 2 and 4 ranks). Release mode: the integration tests train to ‖∇f‖² ≤ 1e-10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi-env.sh
# A first MPICH build starts from a copy of the OpenMPI one where there is one (CI runs
# both): only mpi-sys and what depends on it (mpi, qtrain) are built again — mpi-sys does
# not notice a changed MPICC by itself, hence the explicit clean — instead of every crate.
if [ "$QTRAIN_MPI" = mpich ] && [ ! -d "$CARGO_TARGET_DIR" ] && [ -d target/release ]; then
  cp -a target "$CARGO_TARGET_DIR"
  cargo clean --quiet --release -p mpi-sys
fi
cargo build --release --quiet
cargo test --release -- --test-threads=2
