# What the evidence scripts share (sourced after OUT is set and scripts/mpi-env.sh is
# sourced): the defaults of RANKS (2), QTRAIN (target/release/qtrain) and DATA_DIR
# (../shared/data), the OUT folder, and the run helpers. EVAL_EVERY (20) is how often f is
# evaluated.
RANKS=${RANKS:-2}
QTRAIN=${QTRAIN:-target/release/qtrain}
DATA_DIR=${DATA_DIR:-../shared/data}
mkdir -p "$OUT"

# One run NAME DATA METHOD COMPRESSOR [flags…]; prints "round|bits up|bits down|seconds" at the
# first evaluated f − f* ≤ 1e-6 (or "—|||" when not reached), from `qtrain report --target`.
run() {
  local name=$1 data=$2 method=$3 compressor=$4
  shift 4
  "$QTRAIN_MPIRUN" -n "$RANKS" "$QTRAIN" train --data "$DATA_DIR/$data.txt" \
    --method "$method" --compressor "$compressor" --fstar auto --eval-every "${EVAL_EVERY:-20}" --log-every 100000 \
    --out "$OUT/$name.h5" --force "$@" >"$OUT/$name.log" 2>&1
  "$QTRAIN" report --target 1e-6 "$OUT/$name.h5" 2>/dev/null |
    awk -F'|' -v n="$name" '$2 == " "n" " && $3 ~ /^ *[0-9]+ *$/ { gsub(/ /, ""); print $3 "|" $4 "|" $5 "|" $6; found = 1 }
      $2 == " "n" " && $3 ~ /not reached/ { print "—|||"; found = 1 }
      END { if (!found) print "—|||" }'
}

# The model dimension of a result file (its `features` attribute).
features() {
  h5dump -a features "$1" | awk '/\(0\)/ { print $2 }'
}

# The tables page's title and provenance line: made_by TITLE SCRIPT.
made_by() {
  echo "# Evidence: $1 (tables)"
  echo
  echo "Made by \`bash $2\` on $(uname -n) ($(nproc) cores), $(date -u +%Y-%m-%d),"
}
