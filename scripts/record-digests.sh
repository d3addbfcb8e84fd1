#!/usr/bin/env bash
# Records the final-model digest (the `x_digest` attribute) of every case of the digest
# matrix in tests/fixtures/digests.tsv, one line per (case, rank count):
#
#   ranks <TAB> digest <TAB> train arguments (after --data …, --out …)
#
# The integration test `digests::matrix_digests_are_unchanged` re-runs every line and
# asserts the same digest: a refactor must not change a single bit of any iterate.
# Re-record only for a change that is meant to alter the numbers, and say why in the
# commit (`git log -p tests/fixtures/digests.tsv` shows every time it happened).
#
#   scripts/record-digests.sh [target/release/qtrain] > tests/fixtures/digests.tsv
# (recorded under OpenMPI; QTRAIN_MPI=mpich runs the same matrix under MPICH)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
bin=${1:-$QTRAIN_BIN}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
data=data/agaricus.txt.train
common=(--objective logistic --lambda 0.1 --workers 4 --iters 30 --seed 7)
# Every method × two compressors (and the method options), through allgather and
# allreduce where the compressor allows.
while IFS= read -r case; do
    [[ -z $case || $case == \#* ]] && continue
    for ranks in 1 2 4; do
        out=$dir/run.h5
        rm -f "$out"
        # shellcheck disable=SC2086
        "$QTRAIN_MPIRUN" -n "$ranks" "$bin" train --data "$data" "${common[@]}" $case --out "$out" </dev/null >/dev/null 2>"$dir/err" \
            || { cat "$dir/err" >&2; echo "record-digests.sh: failed: $case on $ranks ranks" >&2; exit 1; }
        digest=$(h5dump -a x_digest "$out" | sed -n 's/.*(0): "\(.*\)".*/\1/p')
        printf '%s\t%s\t%s\n' "$ranks" "$digest" "$case"
    done
done <<'CASES'
--method gd
--method gd --collective allgather
--method dcgd --compressor rand-k:k=20
--method dcgd --compressor rand-k:k=20,shared
--method dcgd --compressor rand-k:k=20,shared --collective allgather
--method dcgd --compressor qsgd:s=2
--method ef --compressor top-k:k=10
--method ef:variant=outside --compressor top-k:k=10
--method ef --compressor natural
--method ef --compressor sign
--method ef --compressor rand-k:k=20,shared,unscaled
--method ef21 --compressor top-k:k=10
--method ef21 --compressor qsgd:s=2
--method ef21:init=compressed --compressor top-k:k=10
--method ef21 --compressor rand-k:k=20,shared
--method ef21 --compressor rand-k:k=20,shared --collective allgather
--method diana --compressor natural
--method diana --compressor terngrad
--method diana --compressor rand-k:k=20,shared
--method scalecom --compressor clt-k:k=10
--method scalecom:beta=0.5,warmup=3 --compressor clt-k:k=20
--method sketched-sgd:k=10,p2=3,momentum=0.5 --compressor sketch:rows=5,cols=40
--method sketched-sgd:k=10,p2=0 --compressor sketch:rows=5,cols=40
--method sketched-sgd:k=10,p2=0,heavymix,gamma-at=accumulator --compressor sketch:rows=3,cols=60
CASES
