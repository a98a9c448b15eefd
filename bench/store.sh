#!/usr/bin/env bash
# Store throughput: ROWS six-column rows appended by store.sqlite (bench/store_rows.yaml) at
# transactions of 100, 1000 and 10000 rows, side by side with a hand-written loop (one prepared
# statement, one transaction per batch: bench/sqlite_loop.cpp) writing the same rows, in the same
# run. Whole-process wall time, CPU and peak RSS from bench/timeit.
#
#   bash bench/store.sh              # 1,000,000 rows
#   ROWS=200000 bash bench/store.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
bash tools/setup.sh --bench >/dev/null
cmake --workflow --preset release >/dev/null
bin=build/release/bin
work=$(mktemp -d /tmp/sluice-store-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

measure() {  # label, command...
  local label=$1
  shift
  rm -f "$work"/*.db*
  "$bin/timeit" "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r wall user sys rss <"$work/time"
  awk -v l="$label" -v n="$ROWS" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" 'BEGIN {
    printf "%-30s %9.0f rows/s %7.2f s wall %7.2f s cpu %7.1f MB peak RSS\n", l, n / w, w, u + s, m / 1024 }'
}

echo "rows: $ROWS on $(nproc) cores"
for b in 100 1000 10000; do
  measure "loop    batch $b" "$bin/sqlite_loop" "$work/loop.db" "$ROWS" "$b"
  measure "sluice  batch $b" env BENCH_ROWS="$ROWS" BENCH_BATCH="$b" BENCH_DB="$work/sluice.db" \
    "$bin/sluice" run -q bench/store_rows.yaml
done
