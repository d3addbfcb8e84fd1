#!/usr/bin/env bash
# qtrain's collectives (Comm::sum, Comm::all_gather_messages) against raw MPI calls of the
# same bytes on 2 ranks (issue 13): builds benches/collectives.rs (an example, since it
# runs under mpirun) and prints its Markdown table.
#   benches/collectives.sh [REPS] [RANKS]        (default 300 calls, 2 ranks)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
cargo build --release --example collectives >&2
"$QTRAIN_MPIRUN" -n "${2:-2}" target/release/examples/collectives "${1:-300}" </dev/null
