#!/usr/bin/env bash
# System calls and CPU per request of blobs-server under load, on 127.0.0.1: `strace -c -f`
# attached for 3 s in the middle of an 8 s wrk run. strace slows the server several times
# over while attached, so the counts per request are what this is for, not the rates.
# Needs: strace, wrk, curl, the optimised build (cargo build --profile dist -p blobs-server).
# Usage: blobs/server/bench/syscalls.sh get|put
#   get: GET of one 10 KiB blob, 50 connections;  put: PUT of new 10 KiB blobs, 50 connections.
set -euo pipefail
cd "$(dirname "$0")/../../.."
MODE=${1:?usage: $0 get|put}
case $MODE in get|put) ;; *) echo "unknown mode $MODE: expected get or put" >&2; exit 2 ;; esac
for tool in strace wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install -y $tool" >&2; exit 1; }
done
BIN=${BLOBS_SERVER_BIN:-target/dist/blobs-server}
[ -x "$BIN" ] || { echo "build first: cargo build --profile dist -p blobs-server (or set BLOBS_SERVER_BIN)" >&2; exit 1; }
B=http://127.0.0.1:18195
WORK=$(mktemp -d /tmp/blobs-syscalls.XXXXXX)
cleanup() {
  [ -n "${WRK:-}" ] && kill "$WRK" 2>/dev/null || true
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench:syscalls-token" > "$WORK/tokens"
export BENCH_AUTH="Token $(printf 'bench:syscalls-token' | base64 -w0)"
"$BIN" --listen "${B#http://}" --data-dir "$WORK/data" --tokens "$WORK/tokens" >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q listening "$WORK/out" || ! kill -0 "$PID" 2>/dev/null; then
  echo "blobs-server did not start on ${B#http://}:" >&2
  cat "$WORK/err" >&2
  exit 1
fi
case $MODE in
  get)
    head -c 10240 /dev/urandom > "$WORK/b10k"
    curl -sSf -X PUT -H "Authorization: $BENCH_AUTH" --data-binary @"$WORK/b10k" "$B/blobs/bench/b10k" >/dev/null
    wrk -t2 -c50 -d8s -H "Authorization: $BENCH_AUTH" "$B/blobs/bench/b10k" >"$WORK/wrk" &
    ;;
  put) wrk -t2 -c50 -d8s -s blobs/server/bench/put.lua "$B" >"$WORK/wrk" & ;;
esac
WRK=$!
sleep 2
# strace ends on SIGINT with status 130 once its summary is written; anything else failed.
status=0
timeout -s INT 3 strace -c -f -p "$PID" -o "$WORK/strace" 2>"$WORK/strace.err" || status=$?
if [ ! -s "$WORK/strace" ]; then
  echo "strace failed (status $status):" >&2
  cat "$WORK/strace.err" >&2
  exit 1
fi
wait "$WRK"
WRK=
echo "# $MODE, load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E "requests in|Requests/sec" "$WORK/wrk"
head -20 "$WORK/strace"
echo "# server CPU ticks for the whole run (user, system), strace's slowdown included"
awk '{print "user", $14, "system", $15}' "/proc/$PID/stat"
echo "# by thread name (live threads only)"
for t in /proc/"$PID"/task/*; do echo "$(cat "$t/comm") $(awk '{print $14, $15}' "$t/stat")"; done |
  awk '{u[$1]+=$2; s[$1]+=$3; n[$1]++} END {for (k in u) print k, n[k], "threads: user", u[k], "system", s[k]}'
