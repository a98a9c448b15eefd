#!/usr/bin/env bash
# Fetch throughput: a generated static site of PAGES pages (~10 KB each) served by nginx on a free
# loopback port; a fetch-only sluice pipeline at max_in_flight 16 and 64, side by side with the
# reference single-threaded libcurl multi loop (bench/curl_loop.cpp) over the same URLs, in the same
# run. Whole-process figures from bench/timeit: pages/s, CPU seconds per 1,000 pages, peak RSS.
# The loop also runs with a fresh handle per transfer (`fresh`, what libcurl 7.88 needs to be safe
# against any server; see bench/curl_loop.cpp), and the medians are given against both loops; the
# targets are against the first, the loop that reuses its handles.
#
#   bash bench/fetch.sh                 # 20,000 pages, 5 alternating rounds, medians at the end
#   PAGES=5000 ROUNDS=3 bash bench/fetch.sh
#   RUNS="loop fresh" ROUNDS=15 bash bench/fetch.sh   # some of the runs: loop fresh done after_fetch
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-20000}
for what in ${RUNS:-}; do
  [[ $what =~ ^(loop|fresh|done|after_fetch)$ ]] || { echo "RUNS: unknown run '$what' (loop fresh done after_fetch)" >&2; exit 2; }
done
if [[ -n ${RUNS:-} && ! " $RUNS " =~ \ (loop|fresh)\  ]]; then
  echo "RUNS: name loop or fresh too: the medians are given against a loop" >&2
  exit 2
fi
bench_site fetch "$PAGES"
start_nginx "$work" "$work/site" "$port"

echo "pages: $PAGES on $(nproc) cores, nginx 1 worker on 127.0.0.1:$port"
# Warm nginx's open-file cache and the page cache once, unmeasured.
"$bin/curl_loop" "$work/site/urls.txt" 64 >"$work/out" || { cat "$work/out" "$work/error.log"; exit 1; }
ROUNDS=${ROUNDS:-5}
for c in 16 64; do
  rm -f "$work/rounds"
  for r in $(seq "$ROUNDS"); do
    # The runs take turns in each position: a run right after another one measured up to 5% slower
    # with release: done (two identical builds A then B: 0.68x against 0.65x).
    read -ra runs <<<"${RUNS:-loop done fresh after_fetch}"
    first=$(((r - 1) % ${#runs[@]}))
    runs=("${runs[@]:first}" "${runs[@]:0:first}")
    for what in "${runs[@]}"; do
      if [[ $what == loop ]]; then
        measure "curl_loop   concurrency $c" "$PAGES" pages "$bin/curl_loop" "$work/site/urls.txt" "$c"
      elif [[ $what == fresh ]]; then
        measure "curl_loop fresh handles $c" "$PAGES" pages "$bin/curl_loop" "$work/site/urls.txt" "$c" fresh
      else
        measure "sluice $c $what" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY=$c \
          BENCH_RELEASE=$what "$bin/sluice" run -q bench/fetch_only.yaml
      fi
    done
  done
  if [[ " ${runs[*]} " == *" loop "* ]]; then medians "curl_loop   concurrency $c"; fi
  if [[ " ${runs[*]} " == *" fresh "* ]]; then medians "curl_loop fresh handles $c"; fi
done
