#!/usr/bin/env bash
# Peak memory of the `blobs` client moving one large blob up and down through a real
# blobs-server on 127.0.0.1: store it locally, sync it up, sync it down on a second device,
# write it out, and compare. Prints each step's wall time and the client's peak RSS (GNU
# time's "Maximum resident set size").
# Needs: a release build (cargo build --release -p blobs-server -p blobs-client), GNU time,
# and about 5 times SIZE of free disk under the work directory.
# Usage: blobs/client/bench/big-blob.sh [SIZE_MIB] [v1|v2] [sqlcipher|fs]  (default 1024 v2 sqlcipher)
set -euo pipefail
cd "$(dirname "$0")/../../.."
SIZE_MIB=${1:-1024}
FORMAT=${2:-v2}
BACKEND=${3:-sqlcipher}
SERVER_BIN=${BLOBS_SERVER_BIN:-target/release/blobs-server}
CLIENT_BIN=${BLOBS_BIN:-target/release/blobs}
for b in "$SERVER_BIN" "$CLIENT_BIN"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p blobs-server -p blobs-client" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/big-blob.XXXXXX")
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN=bench-$RANDOM$RANDOM
echo "bench:$TOKEN" > "$WORK/tokens"
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --tokens "$WORK/tokens" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/server.out" | head -1)
case "$ADDR" in 127.0.0.1:*) ;; *) echo "the server did not start: $(cat "$WORK/server.err")" >&2; exit 1 ;; esac

export BLOBS_SERVER="http://$ADDR" BLOBS_USER=bench BLOBS_TOKEN=$TOKEN BLOBS_PASSPHRASE=bench-passphrase
head -c $(( SIZE_MIB << 20 )) /dev/urandom > "$WORK/input"

step() { # NAME ARGS...: runs the client under GNU time and prints time and peak RSS
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$CLIENT_BIN" -q --format "$FORMAT" "$@" >/dev/null
  read -r secs kib < "$WORK/time"
  printf '%-28s %8.2f s %8.1f MiB peak RSS %8.1f MiB/s\n' "$name" "$secs" "$(echo "$kib / 1024" | bc -l)" \
    "$(echo "$SIZE_MIB / $secs" | bc -l)"
}

echo "blob of $SIZE_MIB MiB, format $FORMAT, $BACKEND store; load: $(cut -d' ' -f1-3 /proc/loadavg)"
step "store locally (put)" --store "$WORK/up" --backend "$BACKEND" put --no-upload --id big "$WORK/input"
step "sync up" --store "$WORK/up" sync
step "sync down (new device)" --store "$WORK/down" --backend "$BACKEND" sync
step "write out (get)" --store "$WORK/down" get big -o "$WORK/output"
cmp "$WORK/input" "$WORK/output" && echo "output identical to input"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
