#!/usr/bin/env bash
# Where the CPU time of a 10 KiB GET goes, in blobs-server or in nginx serving the same file:
# `perf record` with the software clock (sampling at 2 kHz with call stacks, user and kernel)
# for 5 s in the middle of `wrk -t2 -c50 -d8s` on 127.0.0.1. Hardware counters are not
# needed. Kernel symbols need `sysctl kernel.kptr_restrict=0`, and perf's own overhead
# inflates every share alike, so read the shares, not the absolute times.
# Needs: perf (linux-perf), nginx, wrk, curl, the optimised build (cargo build --profile dist -p blobs-server).
# Usage: blobs/server/bench/profile.sh blobs|nginx
set -euo pipefail
cd "$(dirname "$0")/../../.."
WHO=${1:?usage: $0 blobs|nginx}
case $WHO in blobs|nginx) ;; *) echo "unknown server $WHO: expected blobs or nginx" >&2; exit 2 ;; esac
for tool in perf nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
BIN=${BLOBS_SERVER_BIN:-target/dist/blobs-server}
[ -x "$BIN" ] || { echo "build first: cargo build --profile dist -p blobs-server (or set BLOBS_SERVER_BIN)" >&2; exit 1; }
B=http://127.0.0.1:18196
WORK=$(mktemp -d /tmp/blobs-profile.XXXXXX)
chmod 755 "$WORK" # nginx's workers run as another user
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench:profile-token" > "$WORK/tokens"
AUTH="Token $(printf 'bench:profile-token' | base64 -w0)"
mkdir -p "$WORK/www"
head -c 10240 /dev/urandom > "$WORK/www/b10k"
chmod -R a+rX "$WORK/www"
if [ "$WHO" = blobs ]; then
  "$BIN" --listen "${B#http://}" --data-dir "$WORK/data" --tokens "$WORK/tokens" >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
  grep -q listening "$WORK/out" || { echo "blobs-server did not start:" >&2; cat "$WORK/err" >&2; exit 1; }
  curl -sSf -X PUT -H "Authorization: $AUTH" --data-binary @"$WORK/www/b10k" "$B/blobs/bench/b10k" >/dev/null
  URL=$B/blobs/bench/b10k
  PIDS=$PID
else
  # shellcheck source=nginx.sh
  source blobs/server/bench/nginx.sh
  start_nginx "$WORK" 18197
  URL=http://127.0.0.1:18197/b10k
  PIDS=$(nginx_workers "$WORK")
fi
wrk -t2 -c50 -d8s -H "Authorization: $AUTH" "$URL" >"$WORK/wrk" &
WRK=$!
sleep 1.5
# CPU seconds (user and system) of the server's processes so far.
cpu() { tr , '\n' <<<"$PIDS" | while read -r p; do cut -d' ' -f14,15 "/proc/$p/stat"; done |
  awk -v t="$(getconf CLK_TCK)" '{u += $1; s += $2} END {printf "%.3f %.3f", u / t, s / t}'; }
before=$(cpu)
perf record -q -F 2000 -e cpu-clock -g -p "$PIDS" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1
after=$(cpu)
wait "$WRK"
echo "# $WHO, load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "requests in|Requests/sec" "$WORK/wrk"
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk")
echo "$before $after" | awk -v r="$rps" '{n = r * 5; printf "server CPU per request while profiled (perf included): user %.1f us, system %.1f us\n", ($3 - $1) / n * 1e6, ($4 - $2) / n * 1e6}'
echo "# share of the server's samples: user space (by library) and kernel"
perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]' | head -5
echo "# kernel paths, inclusive (a path's share includes what it calls)"
perf report -i "$WORK/perf.data" --stdio --children --sort sym -g none 2>/dev/null |
  grep -E '\] (do_writev|do_sendfile|do_tcp_setsockopt|tcp_sendmsg|net_rx_action|tcp_recvmsg|do_sys_openat2|__x64_sys_statx|__x64_sys_newfstatat|vfs_read|__x64_sys_close|__schedule|__x64_sys_epoll_wait)$'
echo "# the 15 busiest functions of user space"
perf report -i "$WORK/perf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -F '[.]' | head -15
