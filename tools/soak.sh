#!/usr/bin/env bash
# Stops runs at random moments, resumes them, and checks that nothing was lost or written twice:
# what "safe to run unattended" means, tried the way an unattended machine tries it. Not a test
# (its moments are random); a tool like tools/fuzz.sh, for changes to stopping, the state or the
# stores. A site of 2,000 generated pages is served by the fixture server on a free loopback port.
#
#   bash tools/soak.sh                                  # 20 rounds of each scenario, build/ci's sluice
#   ROUNDS=5 SLUICE=build/asan/bin/sluice bash tools/soak.sh
#
# Two scenarios, each with settings.state in its SQLite store:
#   list:  2,400 URLs (2,000 pages, 200 that answer 500, 100 slow ones, 100 that fail once) ->
#          limit 16 -> fetch (2 attempts) -> store.sqlite, failures -> a second table;
#   crawl: a frontier crawl of the same 2,000 pages from one seed -> parse.html -> store.sqlite.
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
rounds=${ROUNDS:-20}
sluice=$(realpath "${SLUICE:-build/ci/bin/sluice}")
tools=$root/build/ci/bin
bash tools/setup.sh --soak >/dev/null || exit 1
if [[ ! -x $sluice || ! -x $tools/fixture_server || ! -x $tools/gen_site ]]; then
  cmake --preset ci >/dev/null && cmake --build --preset ci --target sluice fixture_server gen_site || exit 1
fi
export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/ubsan.supp

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

# Both scenarios: failed fetches go to a table of their own, in the store's database.
failures="  - id: failures
    type: store.sqlite
    path: $work/run/out.db
    table: failed
    columns: {url: TEXT, status: INTEGER, reason: TEXT}
    key: [url]"

cat >"$work/list.yaml" <<EOF
pipeline: soak_list
settings: {batch: 64, state: $work/run/out.db}
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
    columns: {url: TEXT, status: INTEGER}
    key: [url]
$failures
edges:
  - src -> lim -> get -> store
  - get.error -> failures
EOF

cat >"$work/crawl.yaml" <<EOF
pipeline: soak_crawl
settings: {batch: 64, state: $work/run/out.db}
nodes:
  - id: seeds
    type: source.list
    urls: ["$base/p/1.html"]
  - id: frontier
    type: frontier
    max_depth: 100
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
$failures
edges:
  - seeds -> frontier -> lim -> get -> parse -> store
  - parse.links -> frontier
  - get.error -> failures
EOF

findings=0
finding() {
  echo "soak: FINDING: $*"
  findings=$((findings + 1))
}
query() { sqlite3 "$work/run/out.db" "$1" 2>&1; }

# One round of a scenario: a fresh run, then --resume, each stopped at a random moment, until one
# ends by itself; then the totals.
round() {
  local scenario=$1 n=0 resume=() release=() sig delay pid rc stopped_at ended stop_ms
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
    if kill -"$sig" "$pid" 2>/dev/null; then stopped_at=$(date +%s%N); else sig=none; fi
    wait "$pid" 2>/dev/null  # (no "Killed" line from the shell for a SIGKILL)
    rc=$?
    ended=$(date +%s%N)
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
  if [[ $scenario == list ]]; then
    got="$(query "SELECT count(*), count(DISTINCT url) FROM pages") $(query "SELECT count(*) FROM failed") \
$(query "SELECT count(*) FROM failed WHERE reason != 'http_status' OR url NOT LIKE '%/status/500%'") \
$(query "SELECT count(*) FROM pages JOIN failed USING (url)")"
    expected_totals="2200|2200 200 0 0"
  else
    got="$(query "SELECT count(*), count(DISTINCT page_url) FROM pages") $(query "SELECT count(*) FROM failed")"
    expected_totals="2000|2000 0"
  fi
  if [[ $got != "$expected_totals" ]]; then
    finding "$scenario round $r: after $n runs the store holds '$got', expected '$expected_totals'"
  else
    echo "soak: $scenario round $r: $n runs, the store complete"
  fi
}

for scenario in list crawl; do
  for r in $(seq "$rounds"); do round "$scenario"; done
done
echo "soak: $((2 * rounds)) rounds, $findings findings"
((findings == 0))
