#!/usr/bin/env bash
# Instructions per page, fetch-only pipeline against the reference loop: where the fetch benchmark's
# gap comes from, in figures that do not move with the machine's noise. Runs callgrind over PAGES
# generated pages (nginx on a free loopback port) and over one page, for bench/curl_loop (as it is,
# and with a fresh handle per transfer: `fresh`) and for bench/fetch_only.yaml (max_in_flight 16,
# release: after_fetch), and prints per page, start-up subtracted: the whole process, and sluice's
# fetch I/O thread (the bottleneck) with its libraries.
#
#   bash bench/fetch_profile.sh          # 2,000 pages, about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-2000}
bench_site profile "$PAGES"
start_nginx "$work" "$work/site" "$port"
head -1 "$work/site/urls.txt" >"$work/one.txt"
"$bin/curl_loop" "$work/site/urls.txt" 16 >/dev/null  # warm nginx and the page cache

# callgrind OUT URLS COMMAND...: one thread per output file (OUT-01, OUT-02, ...).
callgrind() {
  local out=$1 urls=$2
  shift 2
  BENCH_URLS=$urls BENCH_CONCURRENCY=16 BENCH_RELEASE=after_fetch \
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" "$@" >/dev/null 2>&1
}
# total FILES...: instructions summed over callgrind outputs.
total() { cat "$@" | awk '/^totals:/ { t += $2 } END { print t }'; }
# by_library FILE: instructions per library of one thread, self cost.
by_library() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null |
    sed -nE 's/^ *([0-9,]+) \( *[0-9.]+%\) .*\[(.*)\]$/\1 \2/p' |
    awk '{ gsub(",", "", $1); n = split($2, p, "/"); lib[p[n]] += $1 } END { for (l in lib) print lib[l], l }'
}

for run in loop fresh sluice; do
  for size in one all; do
    urls=$work/site/urls.txt
    [[ $size == one ]] && urls=$work/one.txt
    if [[ $run == loop ]]; then
      callgrind "$work/cg.$run.$size" "$urls" "$bin/curl_loop" "$urls" 16
    elif [[ $run == fresh ]]; then
      callgrind "$work/cg.$run.$size" "$urls" "$bin/curl_loop" "$urls" 16 fresh
    else
      callgrind "$work/cg.$run.$size" "$urls" "$bin/sluice" run -q bench/fetch_only.yaml
    fi
  done
done

per_page() { echo $((($1 - $2) / (PAGES - 1))); }
loop_all=$(total "$work"/cg.loop.all-*)
loop_one=$(total "$work"/cg.loop.one-*)
fresh_all=$(total "$work"/cg.fresh.all-*)
fresh_one=$(total "$work"/cg.fresh.one-*)
sluice_all=$(total "$work"/cg.sluice.all-*)
sluice_one=$(total "$work"/cg.sluice.one-*)
io_all=$(grep -l 'HttpLoop::run' "$work"/cg.sluice.all-* | head -1)
io_one=$(grep -l 'HttpLoop::run' "$work"/cg.sluice.one-* | head -1)
echo "instructions per page ($PAGES pages, 16 in flight, start-up subtracted):"
echo "  curl_loop, whole process:          $(per_page "$loop_all" "$loop_one")"
echo "  curl_loop fresh, whole process:    $(per_page "$fresh_all" "$fresh_one")"
echo "  sluice, whole process:             $(per_page "$sluice_all" "$sluice_one")"
echo "  sluice, fetch I/O thread:          $(per_page "$(total "$io_all")" "$(total "$io_one")")"
echo "start-up and exit (one page): curl_loop $loop_one, sluice $sluice_one instructions"
echo "by library, per page (self cost, start-up included: ${PAGES} pages):"
for run in loop fresh; do
  mode=${run/#loop/}
  echo "  curl_loop${mode:+ $mode}:"
  by_library "$(ls "$work"/cg.$run.all-* | head -1)" | sort -rn | head -6 |
    awk -v n="$PAGES" '{ printf "    %-28s %8.0f\n", $2, $1 / n }'
done
echo "  sluice fetch I/O thread:"
by_library "$io_all" | sort -rn | head -8 | awk -v n="$PAGES" '{ printf "    %-28s %8.0f\n", $2, $1 / n }'
# Where the I/O thread's own work goes, inclusive of what each part calls (start-up included).
echo "  sluice fetch I/O thread, inclusive, per page:"
callgrind_annotate --inclusive=yes --threshold=100 "$io_all" 2>/dev/null |
  awk -v n="$PAGES" '
    / \?\?\?:curl_multi_perform / { label = "curl_multi_perform" }
    /HttpLoop::recycle\(/ { label = "a fresh handle: duphandle and cleanup (recycle)" }
    /HttpLoop::conclude\(/ { label = "a transfer concluded: record built and handed over" }
    /limiter_node<.*>::forward_task\(\)/ { label = "  of which the next record admitted through the limit" }
    /FieldSetter::operator\(\)\(/ { label = "  of which the fetched fields appended" }
    /response_header\(/ { label = "  of which the kept headers read" }
    label != "" { v = $1; gsub(",", "", v); printf "    %-54s %8.0f\n", label, v / n; label = "" }'
