#!/usr/bin/env bash
# Scaling study (issue: commutative compressed all-reduce): the same job at 1, 2, 4, 8
# ranks (16 with RANKS="1 2 4 8 16" on a larger machine) for four exchanges:
#   dense allreduce (gd) · allgather of top-k pairs (ef21) · CLT-k allreduce (scalecom)
#   · count-sketch allreduce (sketched-sgd).
# Prints one Markdown table (qtrain report): bytes per rank per round and the median
# time split per round. More ranks than cores run oversubscribed.
#   benches/scaling.sh [DATA.svm]     (default ../shared/data/spam_tfidf.txt, else a
#                                      generated d = 50,000 set)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
bin=target/release/qtrain
[ -x "$bin" ] || cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
data=${1:-../shared/data/spam_tfidf.txt}
if [ ! -f "$data" ]; then
  data=$out/generated.svm
  "$bin" generate --rows 6000 --features 50000 --nnz 250 --seed 1 --out "$data" >/dev/null
fi
iters=${ITERS:-60}
k=${K:-500}
common=(--data "$data" --lambda 1e-3 --iters "$iters" --eval-every 10 --log-every 100000)
files=()
for ranks in ${RANKS:-1 2 4 8}; do
  while read -r name method compressor; do
    f=$out/$name-$ranks.h5
    mpirun -n "$ranks" "$bin" train "${common[@]}" --method "$method" --compressor "$compressor" \
      --out "$f" </dev/null >/dev/null 2>"$out/log" || { cat "$out/log" >&2; exit 1; }
    files+=("$f")
  done <<EOF2
gd gd identity
ef21-topk ef21 top-k:k=$k
scalecom scalecom clt-k:k=$k
sketch sketched-sgd:k=$k,p2=4 sketch:rows=5,cols=$((4 * k))
EOF2
done
"$bin" report "${files[@]}"
