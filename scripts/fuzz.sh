#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer with AddressSanitizer; README
# "Fuzzing") for SECONDS each, from the committed seed corpus fuzz/corpus/<target>/ plus
# what earlier runs found (fuzz/corpus-found/<target>/, not committed), and prints one
# line per target: runs, coverage, crashes. Exit 1 on a crash, with the input's path.
#
#   scripts/fuzz.sh                      # 60 s per target
#   QTRAIN_FUZZ_SECONDS=600 scripts/fuzz.sh libsvm wire
#
# A single allocation above 64 MiB counts as a crash (-malloc_limit_mb): no input of a
# few kilobytes justifies one, so a length field claiming 2^40 entries must be an error.
# Needs a nightly toolchain (rustup's; sanitizers) and cargo-fuzz, installed from
# crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${QTRAIN_FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(libsvm config wire checkpoint)

source scripts/mpi-env.sh   # the fuzz targets link qtrain, hence MPI
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (cargo fuzz needs one for the sanitizer flags): rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install --quiet --locked cargo-fuzz
fi
cargo +nightly fuzz build -O >/dev/null 2>&1 || cargo +nightly fuzz build -O

crashes=0
for t in "${targets[@]}"; do
  found="fuzz/corpus-found/$t"
  mkdir -p "$found"
  log=$(mktemp)
  set +e
  cargo +nightly fuzz run -O "$t" "$found" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 || true)
  if [ "$rc" = 0 ]; then
    echo "fuzz $t: $runs runs in $seconds s, ${cov:-cov: ?} edges, 0 crashes"
  else
    crashes=$((crashes + 1))
    echo "fuzz $t: CRASH after $runs runs (exit $rc):"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|malloc\(' "$log" | head -n 8 | sed 's/^/    /'
  fi
  rm -f "$log"
done
[ "$crashes" = 0 ]
