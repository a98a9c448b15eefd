#!/usr/bin/env bash
# Stops runs at random moments, resumes them, and checks that nothing was lost or written twice:
# what "safe to run unattended" means, tried the way an unattended machine tries it. Not a test
# (its moments are random); a tool like tools/fuzz.sh, for changes to stopping, the state or the
# stores. A site of 2,000 generated pages is served by the fixture server on a free loopback port.
#
#   bash tools/soak.sh                                  # 10 rounds of each scenario, build/ci's sluice
#   ROUNDS=5 SLUICE=build/asan/bin/sluice bash tools/soak.sh
#   ROUNDS=2 SLUICE=build/tsan/bin/sluice bash tools/soak.sh   # after tools/tsan.sh built its oneTBB
#   SCENARIOS='files spill' bash tools/soak.sh          # some of them
#
# Six scenarios, each resumable (settings.state):
#   list:  2,400 URLs (2,000 pages, 200 that answer 500, 100 slow ones, 100 that fail once) ->
#          limit 16 -> fetch (2 attempts) -> store.sqlite, failures -> a second table; the state
#          in the store's database;
#   crawl: a frontier crawl of the same 2,000 pages from one seed -> parse.html -> store.sqlite;
#   files: list's run with a sink.csv beside the store, which must end with every page's row
#          (once or more: redone work is written again), one header and no broken row;
#   save:  list's run with a save node before the store, so the store is a manifest of files that
#          must each be whole (the size stored; a generated page's bytes as served), one per page;
#   download: 24 files of 1.5 MiB sent slowly (~0.4 s each, 6 at a time), fetched to disk with
#          `download:`, so that stops leave files half written, which the next run continues by a
#          Range request: each must end whole (as an uninterrupted run got it), its SHA-256 as the
#          record says, with no part file left;
#   spill: crawl's run with a frontier that keeps 40 URLs in memory and spills the rest to disk, a
#          window of 24, the state in a file of its own (trailing the store by its own writer) and
#          a gzipped sink.jsonl beside the store, which must end as whole gzip members of valid
#          JSON lines naming every page.
# Every other round the limit releases its slots after fetch (`release: after_fetch`), so that
# records wait for the store outside the bound. A round starts a fresh run, then stops it at a
# random moment in its first 1.5 s with SIGINT, SIGTERM (graceful) or SIGKILL (a crash), and runs
# --resume, stopped so too, until a run ends by itself. Then every URL must be in the store
# exactly once (list: the 2,200 pages, the 200 failures; crawl: the 2,000 pages). Also checked:
# each stopped run's exit code (130, 143, 137), a graceful stop within 5 s, and no sanitizer
# report or engine bug on standard error. Ends non-zero on any finding, after printing it with the
# run's standard error.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${ROUNDS:-10}
read -ra scenarios <<<"${SCENARIOS:-list crawl files save download spill}"
sluice=$(realpath "${SLUICE:-build/ci/bin/sluice}")
tools=$root/build/ci/bin
bash tools/setup.sh --soak >/dev/null || exit 1
if [[ ! -x $sluice || ! -x $tools/fixture_server || ! -x $tools/gen_site ]]; then
  cmake --preset ci >/dev/null && cmake --build --preset ci --target sluice fixture_server gen_site || exit 1
fi
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/ubsan.supp
if [[ $sluice == */build/tsan/* ]]; then  # with the instrumented oneTBB that tools/tsan.sh builds
  [[ -e $root/build/tsan-tbb/lib/libtbb.so.12 ]] || { echo "soak: run tools/tsan.sh once first"; exit 1; }
  export LD_LIBRARY_PATH=$root/build/tsan-tbb/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp ${TSAN_OPTIONS:-}"
fi

work=$(mktemp -d /tmp/sluice-soak.XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$tools/gen_site" "$work/site" http://127.0.0.1:0 2000 4000 >/dev/null || exit 1
"$tools/fixture_server" --root "$work/site" --port-file "$work/port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.05; done
port=$(cat "$work/port") || exit 1
base=http://127.0.0.1:$port

{
  sed "s#http://127.0.0.1:0/#$base/#" "$work/site/urls.txt"
  for i in $(seq 200); do echo "$base/status/500?i=$i"; done
  for i in $(seq 100); do echo "$base/delay/200?i=$i"; done
  for i in $(seq 100); do echo "$base/flaky/f$i?fail=1"; done
} | shuf >"$work/urls.txt"

# Every scenario: failed fetches go to a table of their own, in the store's database (its folder).
failures_node() {
  cat <<EOF
  - id: failures
    type: store.sqlite
    path: ${1:-$work/run}/out.db
    table: failed
    columns: {url: TEXT, status: INTEGER, reason: TEXT}
    key: [url]
EOF
}

# The list's pipeline: NAME, the state's file, nodes and edges to add, then optionally what lies
# between fetch and the store (a chain: "files -> ") and the store's columns.
list_yaml() {
  local chain=${5:-} columns=${6:-'{url: TEXT, status: INTEGER}'}
  cat <<EOF
pipeline: $1
settings: {batch: 64, state: $2}
nodes:
  - id: src
    type: source.list
    file: $work/urls.txt
  - id: lim
    type: limit
    max_in_flight: 16
  - id: get
    type: fetch
    robots: ignore
    retries: {attempts: 2, base: 10ms}
    circuit_breaker: {failure_threshold: 0}
    on_error: route
  - id: store
    type: store.sqlite
    path: $work/run/out.db
    table: pages
    columns: $columns
    key: [url]
$(failures_node)
$3
edges:
  - src -> lim -> get -> ${chain}store
  - get.error -> failures
$4
EOF
}
list_yaml soak_list "$work/run/out.db" "" "" >"$work/list.yaml"
list_yaml soak_files "$work/run/out.db" "  - id: csv
    type: sink.csv
    path: $work/run/pages.csv
    fields: [url, status]" "  - get -> csv" >"$work/files.yaml"
list_yaml soak_save "$work/run/out.db" "  - id: files
    type: save
    dir: $work/run/files
    path: '{url:hash}.html'" "" "files -> " "{url: TEXT, status: INTEGER, file: TEXT, file_size: INTEGER}" \
  >"$work/save.yaml"

# The crawl's pipeline: NAME, the state's file, settings to add to the frontier, nodes and edges to
# add.
crawl_yaml() {
  cat <<EOF
pipeline: $1
settings: {batch: 64, state: $2}
nodes:
  - id: seeds
    type: source.list
    urls: ["$base/p/1.html"]
  - id: frontier
    type: frontier
    max_depth: 100
$3
  - id: lim
    type: limit
    max_in_flight: 16
  - id: get
    type: fetch
    robots: ignore
    circuit_breaker: {failure_threshold: 0}
    on_error: route
  - id: parse
    type: parse.html
    items: div.product
    links: a[href]::attr(href)
    fields:
      name: h1.name
      price: {select: span.price, type: number}
  - id: store
    type: store.sqlite
    path: $work/run/out.db
    table: pages
    columns: {page_url: TEXT, name: TEXT, price: REAL}
    key: [page_url]
$(failures_node)
$4
edges:
  - seeds -> frontier -> lim -> get -> parse -> store
  - parse.links -> frontier
  - get.error -> failures
$5
EOF
}
crawl_yaml soak_crawl "$work/run/out.db" "" "" "" >"$work/crawl.yaml"
crawl_yaml soak_spill "$work/run/state.db" "    memory: 40
    window: 24
    spill_dir: $work/run" "  - id: jsonl
    type: sink.jsonl
    path: $work/run/pages.jsonl.gz
    fields: [page_url, name]" "  - parse -> jsonl" >"$work/spill.yaml"

# download: 24 files of 1.5-1.6 MiB, sent in blocks of 64 KiB 15 ms apart, downloaded by fetch
# straight to disk (`download:`), 6 at a time: a stop leaves files half written, which the next run
# continues with a Range request. Half of them name their version by ETag, half by Last-Modified.
for i in $(seq 24); do
  if ((i % 2)); then validator=etag; else validator=date; fi
  echo "$base/ranged/d$i/$((1572864 + i * 4099))?seed=$i&cuts=0&pace=15&validator=$validator"
done >"$work/downloads.txt"
download_yaml() {  # NAME, the folder of the files
  cat <<EOF
pipeline: $1
settings: {batch: 8, state: $2/out.db}
nodes:
  - id: src
    type: source.list
    file: $work/downloads.txt
  - id: lim
    type: limit
    max_in_flight: 6
  - id: get
    type: fetch
    robots: ignore
    download: {dir: $2/files, sha256: true}
    circuit_breaker: {failure_threshold: 0}
    on_error: route
  - id: store
    type: store.sqlite
    path: $2/out.db
    table: files
    columns: {url: TEXT, file: TEXT, file_size: INTEGER, sha256: TEXT}
    key: [url]
$(failures_node "$2")
edges:
  - src -> lim -> get -> store
  - get.error -> failures
EOF
}
download_yaml soak_download "$work/run" >"$work/download.yaml"
# What the files are: the same run, not stopped, into a folder of its own.
if [[ " ${scenarios[*]} " == *" download "* ]]; then
  mkdir -p "$work/reference"
  download_yaml soak_download_reference "$work/reference" >"$work/reference.yaml"
  "$sluice" run -q "$work/reference.yaml" >/dev/null || exit 1
fi

findings=0
finding() {
  echo "soak: FINDING: $*"
  findings=$((findings + 1))
}
query() { sqlite3 "$work/run/out.db" "$1" 2>&1; }

# One round of a scenario: a fresh run, then --resume, each stopped at a random moment, until one
# ends by itself; then the totals.
round() {
  local scenario=$1 n=0 resume=() release=() sig delay pid rc stopped_at ended stop_ms continued=0
  ((r % 2 == 0)) && release=(--set lim.release=after_fetch)  # every other round
  rm -rf "$work/run" && mkdir "$work/run"
  while :; do
    n=$((n + 1))
    # A job a script starts in the background ignores SIGINT; sluice keeps a signal it was started
    # ignoring, so the run is started with the defaults a terminal gives.
    env --default-signal=INT,TERM,HUP "$sluice" run -q "${resume[@]}" "${release[@]}" "$work/$scenario.yaml" \
      >"$work/run/stdout" 2>"$work/run/stderr" &
    pid=$!
    delay=$((RANDOM % 1500))
    case $((RANDOM % 4)) in 0) sig=KILL ;; 1) sig=TERM ;; *) sig=INT ;; esac
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    {  # (no "Killed" line from the shell for a SIGKILL, whenever it reaps the run)
      if kill -"$sig" "$pid"; then stopped_at=$(date +%s%N); else sig=none; fi
      wait "$pid"
      rc=$?
    } 2>/dev/null
    ended=$(date +%s%N)
    grep -q 'download: continued' "$work/run/stderr" && continued=$((continued + 1))
    if grep -qiE "sanitizer|runtime error|engine bug|terminate called|assertion" "$work/run/stderr"; then
      finding "$scenario round $r run $n (SIG$sig after ${delay} ms, exit $rc): standard error says:"
      cat "$work/run/stderr"
    fi
    [[ $rc == 0 ]] && break
    local expected
    case $sig in INT) expected=130 ;; TERM) expected=143 ;; KILL) expected=137 ;; *) expected=0 ;; esac
    if [[ $rc != "$expected" ]]; then
      finding "$scenario round $r run $n: SIG$sig after ${delay} ms: exit $rc, expected $expected"
      cat "$work/run/stderr"
      return
    fi
    stop_ms=$(((ended - stopped_at) / 1000000))
    if [[ $sig != KILL ]] && ((stop_ms > 5000)); then
      finding "$scenario round $r run $n: SIG$sig after ${delay} ms took ${stop_ms} ms to stop"
    fi
    resume=(--resume)
    if ((n >= 60)); then
      finding "$scenario round $r: still not finished after $n runs"
      return
    fi
  done
  local got expected_totals
  if [[ $scenario == list || $scenario == files || $scenario == save ]]; then
    got="$(query "SELECT count(*), count(DISTINCT url) FROM pages") $(query "SELECT count(*) FROM failed") \
$(query "SELECT count(*) FROM failed WHERE reason != 'http_status' OR url NOT LIKE '%/status/500%'") \
$(query "SELECT count(*) FROM pages JOIN failed USING (url)")"
    expected_totals="2200|2200 200 0 0"
  elif [[ $scenario == crawl || $scenario == spill ]]; then
    got="$(query "SELECT count(*), count(DISTINCT page_url) FROM pages") $(query "SELECT count(*) FROM failed")"
    expected_totals="2000|2000 0"
  fi
  if [[ $scenario == files ]]; then
    # sqlite3 reads the file as CSV, its first line the header; a broken row would warn.
    got+=" $(sqlite3 :memory: ".import --csv $work/run/pages.csv p" "SELECT count(DISTINCT url), \
count(*) FILTER (WHERE url = 'url' OR url NOT LIKE 'http://127.0.0.1:%' OR status != 200) FROM p" 2>&1)"
    expected_totals+=" 2200|0"
  elif [[ $scenario == save ]]; then
    # Each page's file is whole: its size as stored, and a generated page's bytes as served.
    local url file size bad=0
    while IFS='|' read -r url file size; do
      if [[ ! -f $file || $(stat -c %s "$file") != "$size" ]] ||
        { [[ $url == */p/* ]] && ! cmp -s "$file" "$work/site/p/${url##*/p/}"; }; then
        ((bad++ < 3)) && echo "soak: $url: '$file' is not the page's $size bytes"
      fi
    done < <(query "SELECT url, file, file_size FROM pages")
    got+=" $bad $(find "$work/run/files" -type f -not -name '.*' | wc -l)"
    expected_totals+=" 0 2200"
  elif [[ $scenario == download ]]; then
    # Each file whole, as the uninterrupted run downloaded it, its SHA-256 as the record says, and
    # no part file left behind.
    local url file hash bad=0
    while IFS='|' read -r url file hash; do
      if ! cmp -s "$file" "$work/reference/files/${file##*/}" || [[ $(sha256sum <"$file") != "$hash  -" ]]; then
        ((bad++ < 3)) && echo "soak: $url: '$file' is not the file the server sent"
      fi
    done < <(query "SELECT url, file, sha256 FROM files")
    got="$(query "SELECT count(*), count(DISTINCT url) FROM files") $(query "SELECT count(*) FROM failed") $bad \
$(find "$work/run/files" -type f | wc -l)"
    expected_totals="24|24 0 0 24"
  elif [[ $scenario == spill ]]; then
    got+=" $( (gzip -dc "$work/run/pages.jsonl.gz" | jq -r .page_url | sort -u | wc -l) 2>&1)"
    expected_totals+=" 2000"
  fi
  if [[ $got != "$expected_totals" ]]; then
    finding "$scenario round $r: after $n runs the store holds '$got', expected '$expected_totals'"
  else
    echo "soak: $scenario round $r: $n runs, the store complete$( ((continued)) && echo " ($continued runs continued downloads)")"
  fi
}

for scenario in "${scenarios[@]}"; do
  [[ -f $work/$scenario.yaml ]] || { echo "soak: no scenario '$scenario'"; exit 2; }
  for r in $(seq "$rounds"); do round "$scenario"; done
done
echo "soak: $((${#scenarios[@]} * rounds)) rounds, $findings findings"
((findings == 0))
