#!/usr/bin/env bash
# Evidence for the 3PC / lazy-aggregation / biased-compression family (docs/evidence-3pc.md
# reads these tables; this script writes docs/evidence-3pc-tables.md):
# bits sent up to ‖∇f‖² ≤ 1e-6 with n = 20 logical workers, every method at its best
# multiple 2^0 … 2^11 of its theory step (and best trigger ζ), found by `qtrain sweep`.
#
#   bash docs/evidence-3pc.sh [OUT]          # OUT defaults to results/evidence-3pc
#
# Needs target/release/qtrain (or QTRAIN=path) and ../shared/data/{phishing,a9a}.txt. Writes OUT/<data>/<run>/
# (one sweep each), then docs/evidence-3pc-tables.md (the tables) and docs/figures/3pc-<data>/ (PNG and SVG)
# (the best run of each method, through `qtrain report --out`). Reruns skip finished points.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
OUT=${1:-results/evidence-3pc}
RANKS=${RANKS:-2}
QTRAIN=${QTRAIN:-target/release/qtrain}
DATA_DIR=${DATA_DIR:-../shared/data}
DOC=docs/evidence-3pc-tables.md

# name | method | compressor | extra sweep flags (grid, topology)
RUNS=(
  "gd|gd|identity|"
  "ef21|ef21|top-k:k=1|"
  "ef21-bidirectional|ef21|top-k:k=1|--topology server --down-compressor top-k:k=1"
  "ef21-k|ef21|top-k:k=1|--grid k=1,4,16"
  "clag|clag:zeta=1|top-k:k=1|--grid zeta=0.25,1,4,16"
  "lag|lag:zeta=1|identity|--grid zeta=0.25,1,4"
  "adacgd|adacgd:zeta=1|top-k:k=1;top-k:k=4;top-k:k=16|--grid zeta=0.25,1,4"
  "3pcv1|3pcv1|top-k:k=1|"
  "3pcv2|3pcv2|top-k:k=1;rand-k:k=4|"
  "3pcv4|3pcv4|top-k:k=1;top-k:k=1|"
  "3pcv5|3pcv5|top-k:k=1|"
  "lag-wk|lag-wk|identity|"
  "laq|laq|identity|"
  "ef-topk|ef|top-k:k=4|"
  "ef-nat-dither|ef|nat-dither:s=2|"
  "ef-topk-nd|ef|topk-nd:k=4,s=2|"
)

# The last value of a metrics column (h5dump's data-only output, no Python needed).
last() {
  local values
  values=$(mktemp)
  h5dump -y -w 0 -o "$values" -d "/metrics/$2" "$1" >/dev/null
  tr -s ' ,' '\n' <"$values" | grep -v '^$' | tail -1
  rm -f "$values"
}

{
  echo "# Evidence: bits to ‖∇f‖² ≤ 1e-6 for the 3PC family, lazy aggregation and biased compression"
  echo
  echo "Made by \`bash docs/evidence-3pc.sh\` on $(uname -n) ($(nproc) cores), $(date -u +%Y-%m-%d), $RANKS MPI ranks,"
  echo "n = 20 logical workers, non-convex logistic regression (λ = 0.1, \`--objective logistic-nonconvex\`),"
  echo "x⁰ = 0, at most 10 000 rounds, ‖∇f‖² evaluated every round. Each row is the best point of one"
  echo "\`qtrain sweep\` over the step factors 2^0 … 2^11 of the method's theory step (and the grid shown);"
  echo "bits are the uplink's paper-convention bits (§0.4) until the first round with ‖∇f‖² ≤ 1e-6."
  echo "Skipped = the share of the 20 workers' uploads that were skipped (lazy methods)."
} >"$DOC"

for data in phishing a9a; do
  file="$DATA_DIR/$data.txt"
  if [ ! -r "$file" ]; then
    echo "skip: $file not found" >&2
    continue
  fi
  best_dir="$OUT/$data/best"
  mkdir -p "$best_dir"
  {
    echo
    echo "## $data"
    echo
    echo "| run | method | compressor | best point | rounds | bits up | bits down | skipped |"
    echo "|---|---|---|---|---:|---:|---:|---:|"
  } >>"$DOC"
  for run in "${RUNS[@]}"; do
    IFS='|' read -r name method compressor extra <<<"$run"
    dir="$OUT/$data/$name"
    read -r -a flags <<<"$extra"
    echo "== $data: $name" >&2
    mpirun -n "$RANKS" "$QTRAIN" sweep --data "$file" --objective logistic-nonconvex --lambda 0.1 \
      --workers 20 --method "$method" --compressor "$compressor" --iters 10000 --tol 1e-6 \
      --eval-every 1 --out "$dir" ${flags[@]+"${flags[@]}"} >"$dir.log" 2>&1 || {
      echo "sweep $data/$name failed; see $dir.log" >&2
      exit 1
    }
    # The first ranked row: its point and file; "not reached" when nothing reached 1e-6.
    row=$(grep -m1 -E '^\| 1 \|' "$dir/sweep.md")
    point=$(awk -F'|' '{print $(NF-1)}' <<<"$row" | tr -d ' ')
    h5="$dir/$point"
    if grep -q "not reached\|diverged" <<<"$row"; then
      echo "| $name | \`$method\` | \`$compressor\` | none reached 1e-6 | | | | |" >>"$DOC"
      continue
    fi
    rounds=$(last "$h5" iter)
    up=$(last "$h5" bits_up)
    down=$(last "$h5" bits_down)
    skipped=$(last "$h5" skipped_total)
    share=$(awk -v s="$skipped" -v r="$rounds" 'BEGIN { printf "%.1f %%", (r > 0) ? 100 * s / (20 * r) : 0 }')
    printf '| %s | `%s` | `%s` | %s | %s | %s | %s | %s |\n' "$name" "$method" "$compressor" "${point%.h5}" \
      "$rounds" "$up" "$down" "$share" >>"$DOC"
    cp "$h5" "$best_dir/$name.h5"
  done
  "$QTRAIN" report --out "docs/figures/3pc-$data" "$best_dir"/*.h5 >"$OUT/$data/report.txt"
  echo >>"$DOC"
  echo "Figures: \`docs/figures/3pc-$data/\` (convergence against rounds, bits and time of each row's run)." >>"$DOC"
done
echo "wrote $DOC" >&2
