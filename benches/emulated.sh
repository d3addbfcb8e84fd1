#!/usr/bin/env bash
# Wall-clock time to reach f − f* ≤ TARGET (default 1e-6) on the emulated cluster
# (4 hosts, one rank each, links shaped to RATE, default 1gbit): uncompressed GD
# against compressed methods, on a generated set wide enough for communication to
# dominate (d = 200,000 by default). Needs root (network namespaces).
#   benches/emulated.sh            RATE=100mbit TARGET=1e-4 benches/emulated.sh
source "$(dirname "$0")/lib.sh"
[ -x "$bin" ] || cargo build --release --quiet
rate=${RATE:-1gbit}
target=${TARGET:-1e-6}
features=${FEATURES:-200000}
out=$(mktemp -d)
trap 'scripts/netns-cluster.sh down >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
data=$out/wide.svm
"$bin" generate --rows 8000 --features "$features" --nnz 30 --seed 1 --out "$data" >/dev/null
fstar=$(mpirun -n 2 "$bin" solve --data "$data" --features "$features" --lambda 1e-3 </dev/null 2>/dev/null | awk '/^f\*/ {print $2}')
scripts/netns-cluster.sh up --hosts 4 --rate "$rate" >/dev/null
common=(train --data "$data" --features "$features" --lambda 1e-3 --fstar "$fstar" --eval-every 5 --log-every 1000000)
files=()
while read -r name iters args; do
  # shellcheck disable=SC2086
  "${emulated_launch[@]}" "$bin" "${common[@]}" --iters "$iters" $args --out "$out/$name.h5" </dev/null >/dev/null 2>"$out/log" \
    || { cat "$out/log" >&2; exit 1; }
  files+=("$out/$name.h5")
done <<RUNS
gd 400 --method gd
ef21-topk 3000 --method ef21 --compressor top-k:k=2000 --step-factor 16
scalecom 3000 --method scalecom --compressor clt-k:k=2000 --step-factor 16
sketched-sgd 3000 --method sketched-sgd:k=2000,p2=4 --compressor sketch:rows=5,cols=8000 --step-factor 16
diana-shared 3000 --method diana --compressor rand-k:k=20000,shared
RUNS
echo "emulated cluster: 4 hosts at $rate; d = $features, 8000 rows, λ = 1e-3, f* = $fstar"
"$bin" report "${files[@]}" --target "$target"
