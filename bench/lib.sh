# Shared by the bench scripts (source it): a free loopback port, nginx serving a directory, and
# whole-process measurements with bench/timeit (wall and CPU in microseconds, peak RSS).

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on, below the kernel's ephemeral
# range: a port in that range may be the local end of a client connection (the benchmarks make
# thousands), and then nginx cannot bind it.
free_port() {
  local low=32768
  [[ -r /proc/sys/net/ipv4/ip_local_port_range ]] && read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  for _ in $(seq 1 50); do
    local candidate=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# start_nginx WORKDIR ROOT PORT: one nginx worker serving ROOT on 127.0.0.1:PORT, pid in WORKDIR.
start_nginx() {
  local work=$1 root=$2 port=$3
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
    root $root;
  }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work"
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.05; done
  echo "nginx did not start" >&2
  return 1
}

stop_nginx() {
  local work=$1
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
}

# measure LABEL COUNT UNIT COMMAND...: runs COMMAND, prints COUNT/s, CPU per 1000, peak RSS, wall,
# and appends the figures to $work/rounds for medians().
measure() {
  local label=$1 count=$2 unit=$3
  shift 3
  "$bin/timeit" "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; return 1; }
  read -r wall user sys rss <"$work/time"
  echo "$label|$count|$wall|$user|$sys|$rss" >>"$work/rounds"
  awk -v l="$label" -v n="$count" -v u="$unit" -v w="$wall" -v us="$user" -v s="$sys" -v m="$rss" 'BEGIN {
    printf "%-30s %9.0f %s/s %8.4f cpu-s/1000 %7.1f MB peak RSS %7.3f s wall\n", l, n / w, u, (us + s) * 1000 / n, m / 1024, w }'
}

# medians REFERENCE_LABEL: the median of every label measured so far (rounds alternate, so that both
# sides see the same noise of a shared 2-core machine) and each label's ratios to the reference:
# throughput (higher is better) and CPU per item (lower is better).
medians() {
  local ref=$1
  echo "medians of $(grep -c "^$ref|" "$work/rounds") rounds:"
  awk -F'|' -v ref="$ref" '
    { n[$1]++; rate[$1, n[$1]] = $2 / $3; cpu[$1, n[$1]] = ($4 + $5) * 1000 / $2; rss[$1] = rss[$1] > $6 ? rss[$1] : $6
      if (!($1 in order)) { order[$1] = ++labels; name[labels] = $1 } }
    function median(a, l, k,   i, j, t, v) {
      for (i = 1; i <= k; i++) v[i] = a[l, i]
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
    }
    END {
      r = median(rate, ref, n[ref]); c = median(cpu, ref, n[ref])
      for (i = 1; i <= labels; i++) {
        l = name[i]; mr = median(rate, l, n[l]); mc = median(cpu, l, n[l])
        printf "  %-28s %9.0f /s (%.2fx) %8.4f cpu-s/1000 (%.2fx) %7.1f MB peak RSS\n", l, mr, mr / r, mc, mc / c, rss[l] / 1024
      }
    }' "$work/rounds"
}

# bench_setup NAME: installs what the benchmarks need and builds the release preset. Sets bin and
# work (a temporary directory, removed with nginx stopped, if one runs, when the script exits).
bench_setup() {
  bash tools/setup.sh --bench >/dev/null
  cmake --workflow --preset release >/dev/null
  bin=build/release/bin
  work=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
  chmod 755 "$work"
  trap 'stop_nginx "$work"; rm -rf "$work"' EXIT
}

# bench_site NAME PAGES: bench_setup, then PAGES generated pages of ~10 KB to serve with nginx on a
# free loopback port. Sets bin, work and port; the pages are in $work/site and their URLs in
# $work/site/urls.txt.
bench_site() {
  local name=$1 pages=$2
  bench_setup "$name"
  port=$(free_port)
  "$bin/gen_site" "$work/site" "http://127.0.0.1:$port" "$pages" 10240
}
