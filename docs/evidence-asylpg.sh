#!/usr/bin/env bash
# Evidence for double quantization (issue 11; docs/evidence-asylpg.md reads the table this
# script writes to docs/evidence-asylpg-tables.md, and the figures it copies to
# docs/figures/asylpg-*): bits to f − f* ≤ 1e-6 for synchronous AsyLPG against unquantized
# prox-SVRG (AsyFPG's fp32 exchange), model-only quantization (the μ-bounded model with exact
# gradients, and HALP-style fixed 8-bit models), gradient-only quantization (QSVRG), the delta
# model quantizer, Sparse-AsyLPG and accelerated AsyLPG (unverified coefficients) — logistic
# regression with λ = 0.1 inside f on a9a, mushrooms and w8a, 4 workers, minibatches of 16.
#
#   bash docs/evidence-asylpg.sh [OUT]          # OUT defaults to results/evidence-asylpg
#
# Needs target/release/qtrain (or QTRAIN=path) and ../shared/data/{a9a,mushrooms,w8a}.txt.
# Reruns replace the result files. ≈ 25 seconds on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
OUT=${1:-results/evidence-asylpg}
EVAL_EVERY=10
DOC=docs/evidence-asylpg-tables.md
source docs/evidence-common.sh

{
  made_by "double quantization" docs/evidence-asylpg.sh
  echo "$RANKS MPI ranks, 4 logical workers (the iterates do not depend on the layout)."
  echo
  echo "Logistic regression, λ = 0.1 inside f, \`--batch 16\`, the default η = 1/(4·L_max·(1 + ω/n)) (accelerated: 1/(3·L_max·θ_s)), one"
  echo "pass over a worker's rows per epoch, μ = 0.5, f evaluated every 10 rounds (an epoch's snapshot"
  echo "round counts as a round). Bits are paper bits to the first evaluated round with f − f* ≤ 1e-6;"
  echo "*×* is unquantized prox-SVRG's total over the run's; *bits/coord* is the total per coordinate"
  echo "per worker per round (snapshot rounds included; an SVRG inner step is 64: one fp32 model down, one fp32 gradient up)."
  echo
  echo "| data | run | method | compressor | rounds | bits up | bits down | total | × | bits/coord |"
  echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
} >"$DOC"

for data in a9a mushrooms w8a; do
  base=""
  files=()
  for spec in "svrg|asylpg:model=exact|identity" "model-only|asylpg|identity" \
    "halp-8bit|asylpg:model=fixed,bx=8|identity" "gradient-only|asylpg:model=exact|lowp:b=8" \
    "asylpg|asylpg|lowp:b=8" "asylpg-delta|asylpg:model=delta|lowp:b=8" \
    "sparse-asylpg|sparse-asylpg|sparse-lowp:k=20,b=8" "acc-asylpg|acc-asylpg:unverified|lowp:b=8"; do
    IFS='|' read -r tag method compressor <<<"$spec"
    name="$data-$tag"
    IFS='|' read -r rounds up down _ <<<"$(run "$name" "$data" "$method" "$compressor" \
      --lambda 0.1 --workers 4 --batch 16 --tol 1e-7 --iters 40000)"
    files+=("$OUT/$name.h5")
    d=$(features "$OUT/$name.h5")
    if [[ -n $up ]]; then
      total=$(awk -v u="$up" -v w="$down" 'BEGIN { printf "%.4g", u + w }')
      [[ -z $base ]] && base=$total
      ratio=$(awk -v b="$base" -v t="$total" 'BEGIN { printf "%.2f", b / t }')
      per=$(awk -v t="$total" -v r="$rounds" -v d="$d" 'BEGIN { printf "%.1f", t / (4 * r * d) }')
    else
      total="" ratio="" per=""
    fi
    echo "| $data | $tag | \`$method\` | \`$compressor\` | $rounds | $up | $down | $total | $ratio | $per |" >>"$DOC"
  done
  "$QTRAIN" report --target 1e-6 "${files[@]}" --out "$OUT/figures-$data" >/dev/null
  mkdir -p "docs/figures/asylpg-$data"
  cp "$OUT/figures-$data"/convergence_{bits_total,rounds}.{png,svg} "docs/figures/asylpg-$data/"
done
echo "wrote $DOC and docs/figures/asylpg-*"
