#!/usr/bin/env bash
# Evidence for smoothness-aware compression and MARINA (issue 10; docs/evidence-smoothness.md reads
# the tables this script writes to docs/evidence-smoothness-tables.md):
#  1. bits to f − f* ≤ 1e-6 for DIANA+ with block quantization, B = n blocks against one block, at
#     n = 2, 4, 8 logical workers on a9a and mushrooms, beside smoothness-aware dithering, standard
#     dithering (the reference code's SD-DIANA), BL-DIANA and rand-τ+ — the reference code's setup:
#     logistic regression with λ = 1e-3, f = (1/n)Σ f_i over equal contiguous blocks, theory steps;
#  2. MARINA with the correlated quantizer against independent 1-bit rounding and against DIANA
#     with the same independent quantizer (a9a, λ = 0.1, n = 8), bits to the same tolerance.
#
#   bash docs/evidence-smoothness.sh [OUT]          # OUT defaults to results/evidence-smoothness
#
# Needs target/release/qtrain (or QTRAIN=path) and ../shared/data/{a9a,mushrooms}.txt. Reruns
# replace the result files. ≈ 15 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
OUT=${1:-results/evidence-smoothness}
DOC=docs/evidence-smoothness-tables.md
source docs/evidence-common.sh

{
  made_by "smoothness-aware compression and MARINA" docs/evidence-smoothness.sh
  echo "$RANKS MPI ranks (n logical workers on them: the iterates do not depend on the layout)."
  echo
  echo "## 1. DIANA+ and its baselines: bits to f − f* ≤ 1e-6"
  echo
  echo "Logistic regression, λ = 1e-3 (the reference code's \`l2_weights\`), \`--weighting workers"
  echo "--split drop-remainder\` (n equal contiguous blocks, f = (1/n)Σ f_i), x⁰ = 0, the theory step of"
  echo "each method, at most 60 000 rounds, f evaluated every 20 rounds. Dithering is Elias-coded (the"
  echo "reference code's count). *total* = paper bits up to the first evaluated round with f − f* ≤ 1e-6,"
  echo "*one-time* = the t = 0 shipping of L_i^{1/2} and the steps, n·32·(d² + |h_i|), included in total."
  echo
  echo "| data | n | method | compressor | rounds | total bits | one-time bits | bits without the one-time cost |"
  echo "|---|---:|---|---|---:|---:|---:|---:|"
} >"$DOC"

for data in a9a mushrooms; do
  for n in 2 4 8; do
    # ‖∇f‖² ≤ 2λ·1e-6 implies f − f* ≤ 1e-6 (λ-strong convexity): a stop past the target.
    common=(--lambda 1e-3 --tol 2e-9 --workers "$n" --weighting workers --split drop-remainder --iters 60000)
    # name | method | compressor | shipped step floats per worker (B, d or 0); "-" = no matrices
    for spec in "bl-plus|diana-plus|block-qsgd:elias|B" "one-block-plus|diana-plus|block-qsgd:blocks=1,elias|1" \
      "sd-plus|diana-plus|smooth-dither:elias|d" "rand-tau-plus|diana-plus|rand-tau-plus|0" \
      "sd-diana|diana:rule=reference|qsgd:s=S,norm=inf,elias|-" "bl-diana|bl-diana|block-qsgd:elias|-"; do
      IFS='|' read -r tag method compressor steps <<<"$spec"
      name="$data-n$n-$tag"
      if [[ $compressor == qsgd:s=S* ]]; then
        # The reference baseline's s = ⌊√d/n⌋ (at least 1), d from a 1-round probe.
        "$QTRAIN_MPIRUN" -n "$RANKS" "$QTRAIN" train --data "$DATA_DIR/$data.txt" \
          --iters 1 --out "$OUT/probe.h5" --force >/dev/null 2>&1
        d=$(features "$OUT/probe.h5")
        s=$(awk -v d="$d" -v n="$n" 'BEGIN { s = int(sqrt(d) / n); print (s < 1) ? 1 : s }')
        compressor=${compressor/s=S/s=$s}
      fi
      IFS='|' read -r rounds total _ <<<"$(run "$name" "$data" "$method" "$compressor" "${common[@]}")"
      d=$(features "$OUT/$name.h5")
      case $steps in
        -) once=0 ;;
        B) once=$((n * 32 * (d * d + n))) ;;
        d) once=$((n * 32 * (d * d + d))) ;;
        *) once=$((n * 32 * (d * d + steps))) ;;
      esac
      if [[ -n $total ]]; then
        rest=$(awk -v t="$total" -v o="$once" 'BEGIN { printf "%.4g", t - o }')
      else
        rest=""
      fi
      echo "| $data | $n | \`$method\` | \`$compressor\` | $rounds | $total | $once | $rest |" >>"$DOC"
    done
  done
done

{
  echo
  echo "## 2. MARINA with correlated against independent quantizers, and DIANA"
  echo
  echo "a9a, logistic regression, λ = 0.1, n = 8 logical workers, theory steps (MARINA p = 1/(1 + ω)),"
  echo "at most 60 000 rounds, f evaluated every 20 rounds."
  echo
  echo "| method | compressor | rounds | bits to f − f* ≤ 1e-6 | training seconds |"
  echo "|---|---|---:|---:|---:|"
} >>"$DOC"
for spec in "marina|corr-q" "marina|indep-q" "diana|indep-q" "marina|perm-k" "diana|qsgd:s=1,norm=inf"; do
  IFS='|' read -r method compressor <<<"$spec"
  name="marina-$method-${compressor//[:=,]/_}"
  IFS='|' read -r rounds total _ seconds <<<"$(run "$name" a9a "$method" "$compressor" --lambda 0.1 --tol 2e-7 --workers 8 --iters 60000)"
  echo "| \`$method\` | \`$compressor\` | $rounds | $total | $seconds |" >>"$DOC"
done
echo "wrote $DOC"
