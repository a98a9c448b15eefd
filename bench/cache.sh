#!/usr/bin/env bash
# fetch's cache: PAGES generated pages of ~10 KB served by nginx, fetched and parsed from a list of
# URLs (bench/parse_list.yaml) without a cache, while filling an empty cache, answered from the
# full cache, and with every kept page too old (max_age: 0s), so that each is asked for again with
# its ETag and confirmed by nginx's 304; then bench/fetch_only.yaml (no parsing) without the cache
# and from it, for the speed of the cache's own thread. ROUNDS rounds in that order (the cache runs depend on it);
# medians and ratios against the run without a cache.
#
#   bash bench/cache.sh            # PAGES=20000, ROUNDS=5
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-20000}
ROUNDS=${ROUNDS:-5}
bench_site cache "$PAGES"
start_nginx "$work" "$work/site" "$port"
"$bin/curl_loop" "$work/site/urls.txt" 64 >/dev/null  # warm the caches, unmeasured

echo "pages: $PAGES (10 KB) on $(nproc) cores, nginx on 127.0.0.1:$port, $ROUNDS rounds"
run=(env BENCH_URLS="$work/site/urls.txt" "$bin/sluice" run bench/parse_list.yaml)
fetch_only=(env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY=64 "$bin/sluice" run bench/fetch_only.yaml)
cache=(--set "get.cache.path=$work/cache.db")
for round in $(seq 1 "$ROUNDS"); do
  rm -f "$work"/cache.db*
  measure "no cache" "$PAGES" pages "${run[@]}"
  measure "filling the cache" "$PAGES" pages "${run[@]}" "${cache[@]}"
  measure "from the cache" "$PAGES" pages "${run[@]}" "${cache[@]}"
  measure "revalidated (304)" "$PAGES" pages "${run[@]}" "${cache[@]}" --set get.cache.max_age=0s
  measure "fetch only, no cache" "$PAGES" pages "${fetch_only[@]}"
  measure "fetch only, from the cache" "$PAGES" pages "${fetch_only[@]}" "${cache[@]}"
done
echo "cache file: $(du -k "$work/cache.db" | cut -f1) KB for $PAGES pages of $(du -sk "$work/site/p" | cut -f1) KB"
medians "no cache"
