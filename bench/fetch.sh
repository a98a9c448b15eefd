#!/usr/bin/env bash
# Fetch throughput: a generated static site of PAGES pages (~10 KB each) served by nginx on a free
# loopback port; a fetch-only sluice pipeline at max_in_flight 16 and 64, side by side with the
# reference single-threaded libcurl multi loop (bench/curl_loop.cpp) over the same URLs, in the same
# run. Whole-process figures from /usr/bin/time: pages/s, CPU seconds per 1,000 pages, peak RSS.
#
#   bash bench/fetch.sh                 # 20,000 pages
#   PAGES=5000 bash bench/fetch.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PAGES=${PAGES:-20000}
bash tools/setup.sh --bench >/dev/null
cmake --workflow --preset release >/dev/null
bin=build/release/bin
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=0
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[[ $port -ne 0 ]] || { echo "no free port found"; exit 1; }

"$bin/gen_site" "$work/site" "http://127.0.0.1:$port" "$PAGES" 10240
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<CONF
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
worker_processes 1;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60;
  open_file_cache max=10000;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  server {
    listen 127.0.0.1:$port;
    root $work/site;
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

measure() {  # label, command...
  local label=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r wall user sys rss <"$work/time"
  awk -v l="$label" -v n="$PAGES" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" 'BEGIN {
    printf "%-28s %9.0f pages/s %8.3f cpu-s/1000 pages %7.1f MB peak RSS %7.2f s wall\n",
           l, n / w, (u + s) * 1000 / n, m / 1024, w }'
}

echo "pages: $PAGES on $(nproc) cores, nginx 1 worker on 127.0.0.1:$port"
# Warm nginx's open-file cache and the page cache once, unmeasured.
"$bin/curl_loop" "$work/site/urls.txt" 64 >"$work/out" || { cat "$work/out" "$work/error.log"; exit 1; }
for c in 16 64; do
  measure "curl_loop   concurrency $c" "$bin/curl_loop" "$work/site/urls.txt" "$c"
  measure "sluice  max_in_flight $c" env BENCH_URLS="$work/site/urls.txt" BENCH_CONCURRENCY=$c \
    "$bin/sluice" run -q bench/fetch_only.yaml
done
