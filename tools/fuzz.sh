#!/usr/bin/env bash
# Fuzzes sluice with libFuzzer: builds the targets of tests/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (the `fuzz` preset), then runs each for SECONDS seconds on one core,
# starting from its seeds and the committed corpus of past findings.
#
#   bash tools/fuzz.sh                 # every target, 60 s each
#   SECONDS_EACH=600 bash tools/fuzz.sh parse text
#   SECONDS_EACH=0 bash tools/fuzz.sh  # build, and run each target once over its inputs (CI does:
#                                      # the clang build must not rot between fuzzing campaigns)
#
# New interesting inputs go to build/fuzz/corpus/<target> (kept between runs, not committed). A
# finding (a crash, a sanitizer report, a broken invariant, a hang of more than 10 s) stops its
# target and is written to build/fuzz/findings/<target>/; rerun it alone with
# `build/fuzz/bin/fuzz_<target> FILE`. Once fixed, add the input (or a smaller one with
# `-minimize_crash=1`) to tests/fuzz/corpus/<target>/: the test suite replays that folder.
set -uo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
((${#targets[@]})) || targets=(pipeline parse text sources responses)
seconds=${SECONDS_EACH:-60}

bash tools/setup.sh --fuzz >/dev/null
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]/#/fuzz_}" || exit 1

# The seeds of each target: the folders its test in tests/fuzz/CMakeLists.txt names.
seeds() {
  case $1 in
    pipeline) echo pipelines/*.yaml pipelines/smoke/*.yaml tests/golden/*.yaml ;;
    parse) echo tests/fixtures/site pipelines/quickstart/site ;;
    sources) echo pipelines/smoke/sections.csv ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$t
  findings=build/fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  # Seed files are copied in: libFuzzer reads folders, and writes new inputs to the first one.
  for s in $(seeds "$t"); do
    if [[ -d $s ]]; then find "$s" -type f -exec cp -n {} "$corpus/" \; ; else cp -n "$s" "$corpus/"; fi
  done
  # 0 s: each input of the corpus once, no mutations (libFuzzer's -runs=0 after reading it).
  if ((seconds > 0)); then limit=(-max_total_time="$seconds"); else limit=(-runs=0); fi
  echo "fuzz: $t for ${seconds}s"
  # libFuzzer's own timeout (-timeout) can deadlock: its alarm handler allocates, and the slow
  # input may be inside ASan's allocator then (seen: a stuck run of fuzz_pipeline). So the whole
  # run is bounded too, and a run killed by that bound is a finding: its slow input is the last one
  # the log names (or, while the corpus is read, one of the corpus files).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/ubsan.supp \
    timeout -s KILL $((seconds + 300)) \
    build/fuzz/bin/fuzz_"$t" "${limit[@]}" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "tests/fuzz/corpus/$t" \
      2> "build/fuzz/$t.log"
  rc=$?
  if ((rc == 137)); then echo "fuzz: $t: killed after $((seconds + 300))s: a hang (libFuzzer's timeout did not end it)"; fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "build/fuzz/$t.log" | sed "s/^/fuzz: $t: /"
  if ((rc != 0)); then
    status=1
    echo "fuzz: $t: FINDING (exit $rc), see build/fuzz/$t.log and $findings/"
    grep -m3 -E "ERROR|invariant|SUMMARY" "build/fuzz/$t.log" | sed "s/^/fuzz: $t: /"
  fi
done
exit $status
