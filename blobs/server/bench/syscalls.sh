#!/usr/bin/env bash
# System calls and CPU per request of blobs-server under load, on 127.0.0.1: `strace -c -f`
# attached for 3 s in the middle of an 8 s wrk run, then the CPU time of each thread group.
# Needs: strace, wrk, curl, a release build (cargo build --release -p blobs-server).
# Usage: blobs/server/bench/syscalls.sh get|put
#   get: GET of one 10 KiB blob, 50 connections;  put: PUT of new 10 KiB blobs, 50 connections.
set -euo pipefail
cd "$(dirname "$0")/../../.."
MODE=${1:?usage: $0 get|put}
BIN=${BLOBS_SERVER_BIN:-target/release/blobs-server}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p blobs-server" >&2; exit 1; }
B=http://127.0.0.1:18195
WORK=$(mktemp -d /tmp/blobs-syscalls.XXXXXX)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench:syscalls-token" > "$WORK/tokens"
export BENCH_AUTH="Token $(printf 'bench:syscalls-token' | base64 -w0)" BENCH_RUN="s$$"
"$BIN" --listen "${B#http://}" --data-dir "$WORK/data" --tokens "$WORK/tokens" >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
case $MODE in
  get)
    head -c 10240 /dev/urandom > "$WORK/b10k"
    curl -sf -X PUT -H "Authorization: $BENCH_AUTH" --data-binary @"$WORK/b10k" "$B/blobs/bench/b10k" >/dev/null
    wrk -t2 -c50 -d8s -H "Authorization: $BENCH_AUTH" "$B/blobs/bench/b10k" >"$WORK/wrk" &
    ;;
  put) wrk -t2 -c50 -d8s -s blobs/server/bench/put.lua "$B" >"$WORK/wrk" & ;;
  *) echo "unknown mode $MODE: expected get or put" >&2; exit 2 ;;
esac
WRK=$!
sleep 2
timeout -s INT 3 strace -c -f -p "$PID" -o "$WORK/strace" 2>/dev/null || true
wait "$WRK"
echo "# $MODE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "Requests/sec" "$WORK/wrk"
head -20 "$WORK/strace"
echo "# CPU ticks (user, system) by thread name, whole run"
for t in /proc/"$PID"/task/*; do echo "$(cat "$t/comm") $(awk '{print $14, $15}' "$t/stat")"; done |
  awk '{u[$1]+=$2; s[$1]+=$3; n[$1]++} END {for (k in u) print k, n[k], "threads: user", u[k], "system", s[k]}'
