#!/usr/bin/env bash
# Two sites in one crawl: does a slow site hold up a fast one? A generated site served by nginx
# under two host names: 127.0.0.1, slowed to RATE (2/s) by fetch and seeded at an index page that
# links to PAGES pages at once, and localhost, as fast as nginx answers and seeded at the first page
# of a chain of PAGES pages (each links to the next). The crawl runs DURATION (5s) with 8 limit
# slots, without and with the frontier's per_host_window, and prints how many pages of each site
# were fetched and when the fast site's last page came.
#
#   bash bench/two_sites.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAGES=${PAGES:-40}
RATE=${RATE:-2/s}
DURATION=${DURATION:-5s}
bench_setup two_sites
port=$(free_port)
mkdir -p "$work/site/s"
index=""
for i in $(seq 1 "$PAGES"); do
  index+="<a href=\"$i.html\">$i</a>"
  next=""
  [[ $i -lt $PAGES ]] && next="<a href=\"$((i + 1)).html\">next</a>"
  echo "<html><body><h1>$i</h1>$next</body></html>" >"$work/site/s/$i.html"
done
echo "<html><body>$index</body></html>" >"$work/site/s/index.html"
start_nginx "$work" "$work/site" "$port"

echo "slow site: 127.0.0.1 at $RATE, $PAGES links on its seed; fast site: localhost, a chain of $PAGES pages;" \
  "8 limit slots, $DURATION"
for window in 0 1 2 4 8; do
  out="$work/pages-$window.jsonl"
  SLOW_SEED="http://127.0.0.1:$port/s/index.html" FAST_SEED="http://localhost:$port/s/1.html" RATE="$RATE" \
    DURATION="$DURATION" PER_HOST_WINDOW="$window" OUT="$out" "$bin/sluice" run -q bench/two_sites.yaml
  awk -v w="$window" -v pages="$PAGES" '
    { t = $0; sub(/.*"fetched_at":/, "", t); sub(/}.*/, "", t); t += 0
      if (!start || t < start) start = t
      if ($0 ~ /localhost/) { fast++; if (t > last) last = t } else slow++ }
    END { printf "per_host_window %d: slow site %d pages, fast site %d of %d pages, its last %.2f s after the first fetch\n",
                 w, slow, fast, pages, last - start }' "$out"
done
