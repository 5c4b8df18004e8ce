#!/bin/bash
# Rounds of one `wsblock profile` and one real `thread` cell per target, from
# examples/, beside HOGS busy processes (each in a session of its own, as
# other users' work is), written to OUT as NAME-rROUND-profile.json and
# NAME-rROUND-cell.json. Every busy process started here is ended on exit.
#
#   OUT=results/profile-accuracy/three-busy HOGS=3 bash results/profile-accuracy/measure.sh
#   python3 results/profile-accuracy/table.py results/profile-accuracy/three-busy
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${OUT:?set OUT to a directory}" && cd "$OUT" && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
exec > >(tee "$OUT/measure.log") 2>&1  # the load read at each step, for table.py
KEEPALIVE=(--ping-interval 0.5 --ping-timeout 0.5)
targets=(
 "python_loop|gil_catalogue:python_loop|--param n=1500000"
 "pure_python|pure_python|--work-ms 300"
 "large_result|gil_catalogue:large_result|--param rows=200000"
 "json_parse|gil_catalogue:json_parse|--param mb=6"
 "c_holds_gil|c_holds_gil|--work-ms 300"
 "sha256|gil_catalogue:sha256|--param mb=96"
 "matmul|gil_catalogue:matmul|--param n=900"
 "numpy|numpy|--work-ms 300"
 "blocking_io|blocking_io|--work-ms 300"
)
hogs=()
trap '[ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null' EXIT
for _ in $(seq "${HOGS:-0}"); do
  setsid "$PY" -c "while True: pass" &
  hogs+=($!)
done
cd "$ROOT/examples"
for r in ${ROUNDS:-1 2 3}; do
  for t in "${targets[@]}"; do
    IFS='|' read -r name target args <<< "$t"
    echo "round $r $name $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    # shellcheck disable=SC2086  # $args holds two words on purpose
    "$PY" -m wsblock profile "$target" $args --quiet "${KEEPALIVE[@]}" --out "$OUT/$name-r$r-profile.json" >/dev/null \
      || echo "  profile failed"
    # shellcheck disable=SC2086
    "$PY" -m wsblock run --workload "$target" $args --strategy thread "${KEEPALIVE[@]}" --duration 4 --warmup 1 \
      --observers 2 --job-connections 1 --quiet --out "$OUT/$name-r$r-cell.json" >/dev/null || echo "  cell failed"
  done
done
echo "done $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
