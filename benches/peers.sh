#!/usr/bin/env bash
# The systems frameworks' compressors against the papers' methods (issue 12): bits, rounds
# and wall time to f − f* ≤ TARGET on a9a (logistic, λ = 0.1, 4 workers on 2 ranks), each
# at its default step unless noted in the table's run name, through one protocol and one
# set of metrics. Runs that stall (signSGD, DGC with factor masking) stop at a round cap
# and show "—" at the target. Prints `qtrain report --target` and writes its figures.
#   benches/peers.sh [TARGET] [FIGURE_DIR]          (default 1e-6, docs/figures/peers)
source "$(dirname "$0")/lib.sh"
need_data a9a.txt
target=${1:-1e-6}
figures=${2:-docs/figures/peers}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fstar=$("$QTRAIN_MPIRUN" -n 2 "$bin" solve --data "$data" --lambda 0.1 </dev/null 2>/dev/null | awk '/^f\*/ {print $2}')
common=(--data "$data" --lambda 0.1 --fstar "$fstar" --workers 4 --tol 1e-8 --eval-every 10
  --log-every 1000000 --force)

# One run: NAME ITERS METHOD COMPRESSOR [flags…] → NAME.h5.
run() {
  local name=$1 iters=$2 method=$3 compressor=$4
  shift 4
  "$QTRAIN_MPIRUN" -n 2 "$bin" train "${common[@]}" --iters "$iters" --method "$method" \
    --compressor "$compressor" --out "$out/$name.h5" "$@" </dev/null >"$out/$name.log" 2>&1 ||
    { echo "$name failed:"; tail -5 "$out/$name.log"; exit 1; }
}

run gd 20000 gd identity
run ef21-top-k 20000 ef21 top-k:k=12
run scalecom 20000 scalecom clt-k:k=12
run marina 20000 marina rand-k:k=12
run dgc-no-masking-half-step 20000 dgc:masking=off top-k:k=12,sampled --step-factor 0.5
run dgc-masking 3000 dgc top-k:k=12,sampled
run ef-signsgd-16x 20000 ef sign --step-factor 16
run signum-4x 3000 signum:momentum=0.9 sign --topology server --step-factor 4
run ef21-fp16 20000 ef21 fp16
run ef21-bf16 20000 ef21 bf16
run ef21-random-block 20000 ef21 random-block:k=12,unscaled
run ef-threshold 20000 ef threshold:tau=1e-5
run ef-powersgd-rank-1 20000 ef powersgd:rank=1
run ef-powersgd-rank-2 20000 ef powersgd:rank=2
run powersgd-rank-1-no-ef 20000 gd powersgd:rank=1

echo "a9a, λ = 0.1, 4 workers on 2 ranks, f* = $fstar; target f − f* ≤ $target"
echo
"$bin" report --target "$target" --out "$figures" "$out"/*.h5
