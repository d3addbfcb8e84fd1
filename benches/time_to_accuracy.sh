#!/usr/bin/env bash
# Time to f − f* ≤ TARGET on the emulated cluster (4 hosts, one rank each) at several link
# rates, every method with its step tuned by `qtrain sweep` — GD's too, so the comparison
# is fair (issue 13). Needs root (network namespaces).
#
# 1. `qtrain sweep` of each method's step factors on 4 local ranks (no shaping): a
#    method's round costs the same whatever its step, so the step with the fewest rounds
#    to the target is the fastest one at every link rate. The sweep's target is
#    ‖∇f‖² ≤ 2λ·TARGET, which implies f − f* ≤ TARGET (f is λ-strongly convex).
# 2. The winning step of each method trained on the emulated cluster at every rate in
#    RATES, to the same ‖∇f‖² (--tol), then `qtrain report --target TARGET`: rounds, bits
#    and training time (the `time` column: rounds only, not the monitor's evaluations).
#
#   benches/time_to_accuracy.sh
#   FEATURES=200000 RATES="1gbit" benches/time_to_accuracy.sh
source "$(dirname "$0")/lib.sh"
features=${FEATURES:-1000000}
rows=${ROWS:-20000}
rates=${RATES:-100mbit 1gbit 10gbit}
target=${TARGET:-1e-6}
lambda=1e-3
grad_target=$(awk -v t="$target" -v l="$lambda" 'BEGIN { printf "%.3e", 2 * l * t }')
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
trap 'scripts/netns-cluster.sh down >/dev/null 2>&1 || true' EXIT
data=$out/wide.svm
[ -f "$data" ] || "$bin" generate --rows "$rows" --features "$features" --nnz 30 --seed 1 --out "$data" >/dev/null
fstar=$("$QTRAIN_MPIRUN" -n 2 "$bin" solve --data "$data" --features "$features" --lambda "$lambda" </dev/null 2>/dev/null |
  awk '/^f\*/ {print $2}')
common=(--data "$data" --features "$features" --lambda "$lambda" --fstar "$fstar" --log-every 1000000)
echo "data: $rows rows, d = $features, 30 nonzeros per row, λ = $lambda, f* = $fstar"
echo "sweep target ‖∇f‖² ≤ $grad_target (⇒ f − f* ≤ $target)"

# name | method and compressor | step factors to sweep | evaluate every K rounds
# (EF21's theory step shrinks about as k/d, so its factors grow as k shrinks.)
k1=$((features / 100)) k2=$((features / 500))
methods=$(
  cat <<METHODS
gd|--method gd|0.5,1,1.5,2,3,4|5
ef21-top1%|--method ef21 --compressor top-k:k=$k1|16,32,64,128,256,512,1024|10
ef21-top0.2%|--method ef21 --compressor top-k:k=$k2|64,128,256,512,1024,2048,4096|10
scalecom-1%|--method scalecom --compressor clt-k:k=$k1|16,32,64,128,256,512,1024|10
METHODS
)

declare -A best_factor best_rounds
while IFS='|' read -r name args factors every; do
  sweep=$out/sweep-$name
  # shellcheck disable=SC2086
  "$QTRAIN_MPIRUN" -n 4 "$bin" sweep "${common[@]}" $args --iters 4000 --tol "$grad_target" \
    --eval-every "$every" --step-factors "$factors" --target "$grad_target" --out "$sweep" </dev/null \
    >"$sweep.log" 2>&1 || { tail -20 "$sweep.log" >&2; exit 1; }
  # The first ranked row: | 1 | step × | γ | rounds to target | …
  read -r factor rounds < <(awk -F'|' '$2 ~ /^ *1 *$/ {print $3, $5; exit}' "$sweep/sweep.md")
  [[ $rounds =~ ^\ *[0-9]+\ *$ ]] || { echo "$name: no step reached the target (see $sweep/sweep.md)" >&2; exit 1; }
  best_factor[$name]=$(echo $factor)
  best_rounds[$name]=$(echo $rounds)
  echo "sweep $name: best step factor ${best_factor[$name]} (${best_rounds[$name]} rounds; $sweep/sweep.md)"
done <<<"$methods"

for rate in $rates; do
  scripts/netns-cluster.sh up --hosts 4 --rate "$rate" >/dev/null
  files=()
  while IFS='|' read -r name args _ every; do
    file=$out/$rate-$name.h5
    rm -f "$file"
    # A margin of rounds beyond the sweep's, in case timing noise is not the only difference.
    iters=$((best_rounds[$name] * 3 / 2 + 20))
    # shellcheck disable=SC2086
    "${emulated_launch[@]}" "$bin" train "${common[@]}" $args --step-factor "${best_factor[$name]}" \
      --iters "$iters" --tol "$grad_target" --eval-every "$every" --out "$file" </dev/null >/dev/null 2>"$out/log" ||
      { cat "$out/log" >&2; exit 1; }
    files+=("$file")
  done <<<"$methods"
  scripts/netns-cluster.sh down >/dev/null
  echo
  echo "emulated cluster: 4 hosts at $rate"
  "$bin" report "${files[@]}" --target "$target"
done
