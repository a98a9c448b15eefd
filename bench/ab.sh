#!/usr/bin/env bash
# A/B: two builds of sluice on one benchmark's workload, in the same run, the order alternating
# round by round (the machine's noise and the first-run penalty fall on both), with the benchmark's
# reference loop as the yardstick. Medians of ROUNDS rounds: pages (or rows)/s, CPU per 1000, RSS.
#
#   bash bench/ab.sh e2e   OLD_BUILD_DIR NEW_BUILD_DIR    # fetch -> parse.html -> store.sqlite
#   bash bench/ab.sh crawl OLD_BUILD_DIR NEW_BUILD_DIR    # list of URLs and crawl from one seed
#   bash bench/ab.sh store OLD_BUILD_DIR NEW_BUILD_DIR    # 1,000,000 rows at batch 1,000
#   bash bench/ab.sh fetch OLD_BUILD_DIR NEW_BUILD_DIR    # 16 in flight, release: after_fetch
#   CONCURRENCY=64 bash bench/ab.sh fetch OLD NEW          # fetch: 64 in flight (both sides and the loop)
#
# A build directory is a release build of either commit, e.g. a worktree's:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cmake --workflow --preset release)
#   bash bench/ab.sh e2e /tmp/old/build/release build/release
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

what=${1:?usage: bench/ab.sh e2e|crawl|store|fetch OLD_BUILD_DIR NEW_BUILD_DIR}
[[ $what =~ ^(e2e|crawl|store|fetch)$ ]] || { echo "unknown benchmark '$what': e2e, crawl, store or fetch" >&2; exit 2; }
old=$(realpath "${2:?old build dir}")
new=$(realpath "${3:?new build dir}")
for b in "$old" "$new"; do [[ -x $b/bin/sluice ]] || { echo "no $b/bin/sluice" >&2; exit 2; }; done
ROUNDS=${ROUNDS:-7}
PAGES=${PAGES:-20000}
CONCURRENCY=${CONCURRENCY:-16}
[[ $CONCURRENCY =~ ^[1-9][0-9]*$ ]] || { echo "CONCURRENCY must be a positive number, not '$CONCURRENCY'" >&2; exit 2; }

# run_side LABEL BUILD: one measurement of one build on this benchmark's workload.
run_side() {
  local label=$1 build=$2
  case $what in
    e2e)
      rm -f "$work"/sluice.db*
      measure "$label" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY=64 \
        BENCH_DB="$work/sluice.db" "$build/bin/sluice" run -q bench/e2e.yaml ;;
    crawl)
      measure "$label list" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" "$build/bin/sluice" run -q \
        bench/parse_list.yaml
      measure "$label crawl" "$PAGES" pages env BENCH_SEED="http://127.0.0.1:$port/p/1.html" \
        "$build/bin/sluice" run -q bench/crawl.yaml ;;
    store)
      rm -f "$work"/sluice.db*
      measure "$label" "$ROWS" rows env BENCH_ROWS="$ROWS" BENCH_BATCH=1000 BENCH_DB="$work/sluice.db" \
        "$build/bin/sluice" run -q bench/store_rows.yaml ;;
    fetch)
      measure "$label" "$PAGES" pages env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY="$CONCURRENCY" \
        BENCH_RELEASE=after_fetch "$build/bin/sluice" run -q bench/fetch_only.yaml ;;
  esac
}

case $what in
  e2e | crawl | fetch)
    bench_site "ab-$what" "$PAGES"
    start_nginx "$work" "$work/site" "$port"
    "$bin/curl_loop" "$work/site/urls.txt" 64 >/dev/null  # warm the caches, unmeasured
    ;;
  store)
    ROWS=${ROWS:-1000000}
    bench_setup ab-store
    ;;
esac

rm -f "$work/rounds"
for r in $(seq "$ROUNDS"); do
  case $what in
    e2e)
      rm -f "$work"/loop.db*
      measure "loop" "$PAGES" pages "$bin/e2e_loop" "$work/site/urls.txt" "$work/loop.db" 64 ;;
    crawl) ;;  # the old build's list run is the yardstick
    store)
      rm -f "$work"/loop.db*
      measure "loop" "$ROWS" rows "$bin/sqlite_loop" "$work/loop.db" "$ROWS" 1000 ;;
    fetch) measure "loop" "$PAGES" pages "$bin/curl_loop" "$work/site/urls.txt" "$CONCURRENCY" ;;
  esac
  if ((r % 2)); then
    run_side old "$old"
    run_side new "$new"
  else
    run_side new "$new"
    run_side old "$old"
  fi
done
if [[ $what == crawl ]]; then medians "old list"; else medians "loop"; fi
