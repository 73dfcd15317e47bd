#!/usr/bin/env bash
# The resident memory of an idle `zbatch worker -c 2` connected to a router (docs/BENCHMARKS.md):
# starts a router on free ports and one worker, waits until the router sees the worker, then
# prints the worker's VmRSS, RssAnon and RssFile (/proc/PID/status) and the resident size of each
# mapping (the sum of Rss over /proc/PID/smaps, largest first), and stops both.
# Usage: scripts/measure-worker-rss.sh [ZBATCH_BINARY]   (default: build/zbatch)
set -euo pipefail
zbatch=$(realpath "${1:-build/zbatch}")
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])'))
front=tcp://127.0.0.1:${ports[0]} back=tcp://127.0.0.1:${ports[1]} events=tcp://127.0.0.1:${ports[2]}
"$zbatch" router --data "$dir/data" --frontend "$front" --backend "$back" --events "$events" \
  --durability nosync -l warn 2>"$dir/router.log" &
pids+=($!)
"$zbatch" worker --router "$back" -c 2 --hostname rss@measure -l warn 2>"$dir/worker.log" &
worker=$!
pids+=($worker)
deadline=$((SECONDS + 30))
until "$zbatch" inspect stats --router "$front" --timeout 1 2>/dev/null | grep -q rss@measure; do
  sleep 0.1
  if ((SECONDS > deadline)); then echo "the worker did not connect within 30 s" >&2; cat "$dir"/*.log >&2; exit 1; fi
done
grep -E '^(VmRSS|RssAnon|RssFile|RssShmem)' "/proc/$worker/status"
awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]") }
     /^Rss:/ { rss[name] += $2 }
     END { for (n in rss) if (rss[n] > 0) printf "%8d kB  %s\n", rss[n], n }' "/proc/$worker/smaps" | sort -rn
if [[ ${ZBATCH_RSS_SEGMENTS:-} ]]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / { seg = $1 " " $2 " " $6 } /^Rss:/ && $2 > 0 { print $2 " kB " seg }' \
    "/proc/$worker/smaps" | grep -F "$ZBATCH_RSS_SEGMENTS"
fi
