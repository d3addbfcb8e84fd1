#!/usr/bin/env bash
# Reproduces the figures under docs/figures/ (one of each kind `qtrain report` and
# `qtrain project` draw). Uses ../shared/data/spam_tfidf.txt when present, else a
# generated set of the same shape.   docs/make-figures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
bin=target/release/qtrain
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=../shared/data/spam_tfidf.txt
if [ ! -f "$data" ]; then
  data=$work/generated.svm
  "$bin" generate --rows 6000 --features 50000 --nnz 250 --seed 1 --out "$data"
fi
train() {  # ranks name args…
  local ranks=$1 name=$2; shift 2
  mpirun -n "$ranks" "$bin" train --data "$data" --lambda 1e-3 --fstar auto --out "$work/$name.h5" "$@" </dev/null >/dev/null 2>&1
}
# Convergence: uncompressed GD against three compressed exchanges, 4 ranks.
train 4 gd --method gd --iters 150
train 4 ef21-topk --method ef21 --compressor top-k:k=1000 --step-factor 32 --iters 600 --eval-every 5
train 4 scalecom --method scalecom --compressor clt-k:k=1000 --step-factor 32 --iters 600 --eval-every 5
train 4 sketched-sgd --method sketched-sgd:k=1000,p2=4 --compressor sketch:rows=5,cols=4000 --step-factor 32 --iters 600 --eval-every 5
"$bin" report "$work"/{gd,ef21-topk,scalecom,sketched-sgd}.h5 --out "$work/convergence"
# Scaling: the same short job at 1, 2, 4, 8 ranks (oversubscribed beyond 2 cores).
files=()
for ranks in 1 2 4 8; do
  train "$ranks" "s-gd-$ranks" --method gd --iters 40 --eval-every 5
  train "$ranks" "s-ef21-$ranks" --method ef21 --compressor top-k:k=500 --iters 40 --eval-every 5
  train "$ranks" "s-scalecom-$ranks" --method scalecom --compressor clt-k:k=500 --iters 40 --eval-every 5
  files+=("$work/s-gd-$ranks.h5" "$work/s-ef21-$ranks.h5" "$work/s-scalecom-$ranks.h5")
done
"$bin" report "${files[@]}" --out "$work/scaling"
# Cost model of the 4-rank EF21 run at 10 Gbit/s, 2 µs.
"$bin" project "$work/ef21-topk.h5" --ranks 16,64,256,1024 --bandwidth 10Gbit/s --latency 2us --out "$work/project"
for f in convergence/convergence_rounds convergence/convergence_bits convergence/convergence_time \
         scaling/scaling_time scaling/scaling_bytes project/projection; do
  cp "$work/$f.png" docs/figures/
done
ls -la docs/figures
