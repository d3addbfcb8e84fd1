# Sourced by the bench scripts that train on the real data sets: strict mode, the
# repository root, MPI's environment (scripts/mpi-env.sh), the binary `$bin` ($QTRAIN or
# the release build), and `need_data NAME`, which sets `$data` to the file under
# $DATA_DIR (../shared/data) or ends the bench with a "skipped" line where it is absent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/mpi-env.sh
bin=${QTRAIN:-target/release/qtrain}

need_data() {
    data=${DATA_DIR:-../shared/data}/$1
    [ -f "$data" ] || { echo "skipped: $data is absent"; exit 0; }
}
