#!/usr/bin/env bash
# Synchronous against asynchronous AsyLPG, with and without a straggler (issue 11; the
# reason asynchrony exists is not to wait for the slowest worker). a9a, logistic with
# λ = 0.1, 3 logical workers, full gradients (so that computing, not messaging, is most of
# an inner step, as on a real cluster), lowp:b=8, the μ-bounded model: EPOCHS epochs of
# m = 50 inner steps per worker, i.e. 150 gradient pairs per epoch in both executions
# (sync: 50 rounds of 3 workers; async: 150 applied updates).
#   sync:  3 ranks, each one worker (no rank without data);
#   async: 4 ranks, rank 0 the data-free server, ranks 1..3 the same three workers,
#          staleness τ = 2 (updates older than that are dropped and recomputed).
# --straggler 1:FACTOR slows rank 1's gradients FACTOR× (a worker in both layouts).
# Prints one Markdown table.          benches/async-straggler.sh [EPOCHS] [FACTOR]
source "$(dirname "$0")/lib.sh"
need_data a9a.txt
epochs=${1:-10}
factor=${2:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fstar=$("$QTRAIN_MPIRUN" -n 2 "$bin" solve --data "$data" --lambda 0.1 </dev/null 2>/dev/null | awk '/^f\*/ {print $2}')
common=(--data "$data" --lambda 0.1 --fstar "$fstar" --workers 3 --compressor lowp:b=8
  --eval-every 1000000 --log-every 1000000 --force)

# One run: NAME RANKS METHOD ITERS [flags…] → a table row.
run() {
  local name=$1 ranks=$2 method=$3 iters=$4
  shift 4
  "$QTRAIN_MPIRUN" -n "$ranks" "$bin" train "${common[@]}" --method "$method" --iters "$iters" \
    --out "$out/$name.h5" "$@" </dev/null >"$out/$name.log" 2>&1
  local seconds gap dropped
  seconds=$(awk '/^training time/ {print $3}' "$out/$name.log")
  gap=$(awk '/^f\(x\) − f\*/ {print $4}' "$out/$name.log")
  dropped=—
  if [ "$ranks" = 4 ]; then
    h5dump -y -w 0 -d /async/outcome -o "$out/outcome.txt" "$out/$name.h5" >/dev/null
    dropped=$(tr ',' '\n' <"$out/outcome.txt" | tr -d ' ' | grep -c '^0$' || true)
  fi
  local per_1000
  per_1000=$(awk -v s="$seconds" -v n=$((epochs * 150)) 'BEGIN { printf "%.1f", s * 1e6 / n }')
  printf '| %s | %s | %s | %.3f | %s | %s | %s |\n' "$name" "$ranks" "${*:-—}" "$seconds" "$per_1000" "$gap" "$dropped"
}

echo "f* = $fstar; $epochs epochs of 150 gradient pairs; straggler factor $factor"
echo
echo "| execution | ranks | extra flags | wall time (s) | ms per 1000 updates | f − f* | dropped (stale) |"
echo "|---|---:|---|---:|---:|---:|---:|"
sync_iters=$((epochs * 51))
run sync 3 asylpg:epoch=50 "$sync_iters"
run async 4 asylpg:async,staleness=2,epoch=50 "$epochs"
run sync 3 asylpg:epoch=50 "$sync_iters" --straggler "1:$factor"
run async 4 asylpg:async,staleness=2,epoch=50 "$epochs" --straggler "1:$factor"
