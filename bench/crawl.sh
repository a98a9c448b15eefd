#!/usr/bin/env bash
# Crawl: a generated site of PAGES pages (each links to 5 random pages, plus a chain p/n -> p/n+1 so
# that every page is reachable from p/1) served by nginx. Measures the same pages fetched and
# parsed from a list of URLs (bench/parse_list.yaml) and crawled from one seed
# (bench/crawl.yaml), then a crawl of BIG_PAGES small pages for peak RSS.
#
#   bash bench/crawl.sh            # PAGES=20000, BIG_PAGES=200000
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-20000}
BIG_PAGES=${BIG_PAGES:-200000}
bench_site crawl "$PAGES"
"$bin/gen_site" "$work/site/big" "http://127.0.0.1:$port/big" "$BIG_PAGES" 600
start_nginx "$work" "$work/site" "$port"
"$bin/curl_loop" "$work/site/urls.txt" 64 >/dev/null  # warm the caches, unmeasured

echo "pages: $PAGES (10 KB) and $BIG_PAGES (0.6 KB) on $(nproc) cores, nginx on 127.0.0.1:$port"
fetched() { awk '$1 == "get" { print "  fetched " $3 " pages, " $5 " errors" }' "$work/err"; }
measure "list of $PAGES URLs" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" "$bin/sluice" run bench/parse_list.yaml
fetched
measure "crawl from one seed" "$PAGES" pages env BENCH_SEED="http://127.0.0.1:$port/p/1.html" \
  "$bin/sluice" run bench/crawl.yaml
fetched
measure "crawl of $BIG_PAGES pages" "$BIG_PAGES" pages env BENCH_SEED="http://127.0.0.1:$port/big/p/1.html" \
  "$bin/sluice" run bench/crawl.yaml
fetched
