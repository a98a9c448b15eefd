#!/usr/bin/env bash
# Files larger than memory: FILES files of SIZE (4 of 256 MiB) served by nginx on loopback, fetched
# with 4 in flight and written to disk two ways — fetch into memory then save (the body is held
# whole until save writes it), and fetch's download:, which writes the bytes as they arrive —
# with wall time, CPU and peak RSS of each whole process (bench/timeit), ROUNDS rounds alternating;
# and download: with sha256: true (each file hashed as it is written).
#
#   bash bench/download.sh            # FILES=8 SIZE=64M for other shapes
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

FILES=${FILES:-4}
SIZE=${SIZE:-256M}
ROUNDS=${ROUNDS:-3}
bench_setup download
port=$(free_port)
mkdir -p "$work/site"
: >"$work/urls.txt"
for i in $(seq 1 "$FILES"); do
  head -c "$SIZE" /dev/urandom >"$work/site/file$i.bin"
  echo "http://127.0.0.1:$port/file$i.bin" >>"$work/urls.txt"
done
start_nginx "$work" "$work/site" "$port"
bytes=$(du -cb "$work"/site/*.bin | tail -1 | cut -f1)
sums=$(cd "$work/site" && md5sum -- *.bin | cut -d' ' -f1 | sort)

pipeline() {  # pipeline NAME FETCH_EXTRA TAIL: source -> limit -> fetch -> TAIL -> drop
  cat >"$work/$1.yaml" <<YAML
pipeline: download_$1
nodes:
  - id: src
    type: source.list
    file: $work/urls.txt
  - id: lim
    type: limit
    max_in_flight: 4
  - id: get
    type: fetch
    robots: ignore
    max_body: 4GiB
$2
$3
  - id: out
    type: drop
edges:
  - src -> lim -> get -> $( [[ -n $3 ]] && echo "files -> " )out
YAML
}
pipeline save "" "  - id: files
    type: save
    dir: $work/out_save"
pipeline stream "    download: {dir: $work/out_stream}" ""
pipeline sha256 "    download: {dir: $work/out_sha256, sha256: true}" ""

echo "$FILES files of $SIZE ($((bytes / 1048576)) MiB in all), 4 in flight; figures per MiB"
for round in $(seq 1 "$ROUNDS"); do
  for mode in save stream sha256; do
    rm -rf "$work/out_$mode"
    sync
    measure "$mode" "$((bytes / 1048576))" MiB "$bin/sluice" run -q "$work/$mode.yaml"
    [[ $(cd "$work/out_$mode" && md5sum -- * | cut -d' ' -f1 | sort) == "$sums" ]] ||
      { echo "$mode: the files written differ from those served" >&2; exit 1; }
  done
done
medians save
