# Sourced by the bench scripts: strict mode, the repository root, MPI's environment
# (scripts/mpi-env.sh), the binary `$bin` ($QTRAIN as given, else the release build by its
# absolute path), `need_data NAME`, which sets `$data` to the file under $DATA_DIR
# (../shared/data) or ends the bench with a "skipped" line where it is absent, and
# `emulated_launch`, the mpirun command line of one rank on each of the 4 hosts of
# scripts/netns-cluster.sh (bring the cluster up first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/mpi-env.sh
bin=${QTRAIN:-$PWD/target/release/qtrain}
emulated_launch=(scripts/netns-cluster.sh run -- mpirun --hostfile hostfiles/emulated-4 -n 4 --bind-to none
  --mca plm_rsh_agent "$PWD/scripts/netns-rsh" --mca btl tcp,self --mca btl_tcp_if_include qnet0
  --mca oob_tcp_if_include qnet0 --mca mpi_yield_when_idle 1)

need_data() {
    data=${DATA_DIR:-../shared/data}/$1
    [ -f "$data" ] || { echo "skipped: $data is absent"; exit 0; }
}
