#!/usr/bin/env bash
# Offline throughput and memory: 10,000,000 records from source.list through filter and set into
# sink.jsonl, as a whole process (wall time, CPU, peak RSS from bench/timeit). As the reference in
# the same run: a plain `seq | sed` shell pipeline writing the same kind of lines, and `sluice` writing
# to /dev/null (engine cost without the disk).
#
#   bash bench/offline.sh            # 10M records
#   RECORDS=1000000 bash bench/offline.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-10000000}
[[ -x build/release/bin/sluice && -x build/release/bin/timeit ]] || cmake --workflow --preset release >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

measure() {  # name, command...
  local name=$1
  shift
  build/release/bin/timeit "$out/time" "$@" >/dev/null 2>"$out/stderr" || { cat "$out/stderr"; exit 1; }
  read -r wall user sys rss <"$out/time"
  awk -v n="$name" -v r="$RECORDS" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" \
    'BEGIN { printf "%-28s %10.0f rec/s %7.2f s wall %7.2f s cpu %8.1f MB peak RSS\n", n, r / w, w, u + s, m / 1024 }'
}

echo "records: $RECORDS on $(nproc) cores"
measure "sluice -> file" env BENCH_RECORDS="$RECORDS" BENCH_OUT="$out/out.jsonl" \
  build/release/bin/sluice run -q bench/offline_10m.yaml
lines=$(wc -l <"$out/out.jsonl")
[[ $lines -eq $RECORDS ]] || { echo "expected $RECORDS lines, got $lines"; exit 1; }
rm -f "$out/out.jsonl"
measure "sluice -> /dev/null" env BENCH_RECORDS="$RECORDS" BENCH_OUT=/dev/null \
  build/release/bin/sluice run -q bench/offline_10m.yaml
measure "reference: seq | sed" bash -c \
  "seq 1 $RECORDS | sed 's|.*|{\"url\":\"https://bench.example/item/&\",\"id\":&,\"shop\":\"bench\"}|' > '$out/ref.jsonl'"
# A sink path ending in .gz: the same lines gzipped as they are written (level 6), against the
# reference piped through gzip -6.
measure "sluice -> file.gz" env BENCH_RECORDS="$RECORDS" BENCH_OUT="$out/out.jsonl.gz" \
  build/release/bin/sluice run -q bench/offline_10m.yaml
lines=$(zcat "$out/out.jsonl.gz" | wc -l)
[[ $lines -eq $RECORDS ]] || { echo "expected $RECORDS gzipped lines, got $lines"; exit 1; }
measure "reference: seq | sed | gzip" bash -c \
  "seq 1 $RECORDS | sed 's|.*|{\"url\":\"https://bench.example/item/&\",\"id\":&,\"shop\":\"bench\"}|' | gzip -6 > '$out/ref.jsonl.gz'"
echo "sizes: sluice $(stat -c %s "$out/out.jsonl.gz") bytes gzipped, reference $(stat -c %s "$out/ref.jsonl.gz"), text $(stat -c %s "$out/ref.jsonl")"
