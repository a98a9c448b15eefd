#!/usr/bin/env bash
# End to end: fetch -> parse.html -> store.sqlite over PAGES generated pages served by nginx,
# against bench/e2e_loop.cpp (one thread: curl multi + libxml2 + SQLite) over the same URLs, in the
# same run, both at 64 requests in flight. Whole-process pages/s, CPU and peak RSS.
#
#   bash bench/e2e.sh                   # 20,000 pages
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-20000}
bench_site e2e "$PAGES"
start_nginx "$work" "$work/site" "$port"
"$bin/curl_loop" "$work/site/urls.txt" 64 >/dev/null  # warm the caches, unmeasured

echo "pages: $PAGES on $(nproc) cores, nginx 1 worker on 127.0.0.1:$port"
for _ in $(seq "${ROUNDS:-5}"); do
  rm -f "$work"/*.db*
  measure "loop (1 thread)" "$PAGES" pages "$bin/e2e_loop" "$work/site/urls.txt" "$work/loop.db" 64
  measure "sluice" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY=64 BENCH_DB="$work/sluice.db" \
    "$bin/sluice" run -q bench/e2e.yaml
done
medians "loop (1 thread)"
if command -v sqlite3 >/dev/null; then
  for db in loop sluice; do echo "$db rows: $(sqlite3 "$work/$db.db" 'select count(*) from items')"; done
fi
