#!/usr/bin/env bash
# Where the error-feedback methods stall (issue: commutative compressed all-reduce):
# ScaleCom and Sketched-SGD with a constant step on heterogeneous shards converge to a
# neighbourhood of x*, not to x*. Prints f − f* after N rounds for several step
# factors (× the EF21 rule with α = k/d) and low-pass filters β, on spam_tfidf
# (d = 48,407, λ = 1e-3, 4 ranks).   benches/stall.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
bin=target/release/qtrain
data=../shared/data/spam_tfidf.txt
[ -f "$data" ] || { echo "skipped: $data is absent"; exit 0; }
rounds=${1:-1500}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fstar=$(mpirun -n 4 "$bin" solve --data "$data" --lambda 1e-3 </dev/null 2>/dev/null | awk '/^f\*/ {print $2}')
echo "f* = $fstar; $rounds rounds; k = 1000 (d/48)"
echo
echo "| method | step factor | β | f − f* after $rounds rounds | min f − f* |"
echo "|---|---:|---:|---:|---:|"
run() {  # name factor beta method compressor
  local name=$1 factor=$2 beta=$3 method=$4 compressor=$5
  local f=$out/$name-$factor-$beta.h5
  mpirun -n 4 "$bin" train --data "$data" --lambda 1e-3 --fstar "$fstar" --iters "$rounds" --eval-every 10 \
    --log-every 1000000 --step-factor "$factor" --method "$method" --compressor "$compressor" --out "$f" </dev/null >/dev/null 2>&1
  local gaps
  h5dump -y -w 0 -d /metrics/f_gap -o "$out/gaps.txt" "$f" >/dev/null
  gaps=$(tr ',' '\n' <"$out/gaps.txt" | tr -d ' ' | grep -v '^$')
  echo "| $name | $factor | $beta | $(echo "$gaps" | tail -1) | $(echo "$gaps" | sort -g | head -1) |"
}
for factor in 8 16 32 64; do
  run scalecom "$factor" 1 scalecom clt-k:k=1000
done
for beta in 0.5 0.1; do
  run scalecom 32 "$beta" "scalecom:beta=$beta" clt-k:k=1000
done
for factor in 16 32 64; do
  run sketched-sgd "$factor" 1 sketched-sgd:k=1000,p2=4 sketch:rows=5,cols=4000
done
