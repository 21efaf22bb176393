#!/usr/bin/env bash
# Side-by-side load test of blobs-server and nginx serving the same files on 127.0.0.1.
# Needs: nginx, wrk, curl, python3, a release build (cargo build --release -p blobs-server).
# Usage: blobs/server/bench/compare-nginx.sh [DURATION]   (default 10s per measurement)
# Prints a table of results; BENCHMARKS.md records one run and how to read it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DUR=${1:-10s}
BIN=${BLOBS_SERVER_BIN:-target/release/blobs-server}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p blobs-server" >&2; exit 1; }
HOST=127.0.0.1
NGINX_PORT=18180
BLOBS_PORT=18181
WORK=$(mktemp -d /tmp/blobs-bench.XXXXXX)
chmod 755 "$WORK" # nginx's workers run as another user
cleanup() {
  [ -n "${BLOBS_PID:-}" ] && kill "$BLOBS_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN=bench-token-$(date +%s)
echo "bench:$TOKEN" > "$WORK/tokens"
AUTH="Token $(printf 'bench:%s' "$TOKEN" | base64 -w0)"
export BENCH_AUTH="$AUTH"

# The same bytes for both servers: blobs-server's layout, and a flat docroot for nginx.
mkdir -p "$WORK/www"
head -c 10240 /dev/urandom > "$WORK/www/b10k"
head -c 1048576 /dev/urandom > "$WORK/www/b1m"
head -c 10485760 /dev/urandom > "$WORK/www/b10m"
chmod -R a+rX "$WORK/www"

"$BIN" --listen "$HOST:$BLOBS_PORT" --data-dir "$WORK/data" --tokens "$WORK/tokens" \
  >"$WORK/blobs.out" 2>"$WORK/blobs.err" &
BLOBS_PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/blobs.out" 2>/dev/null && break; sleep 0.1; done
B="http://$HOST:$BLOBS_PORT"
for f in b10k b1m b10m; do
  curl -sf -X PUT -H "Authorization: $AUTH" --data-binary @"$WORK/www/$f" "$B/blobs/bench/$f" >/dev/null
done
# 1000 blobs to list (in their own namespace).
python3 - "$B" "$AUTH" <<'PY'
import sys, urllib.request, os
base, auth = sys.argv[1], sys.argv[2]
assert base.startswith("http://127.0.0.1:")
for i in range(1000):
    req = urllib.request.Request(f"{base}/blobs/bench/{os.urandom(16).hex()}?namespace=list",
                                 data=os.urandom(256), method="PUT", headers={"Authorization": auth})
    urllib.request.urlopen(req).read()
PY

cat > "$WORK/nginx.conf" <<NGX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/ngx-body;
  proxy_temp_path $WORK/ngx-proxy;
  fastcgi_temp_path $WORK/ngx-fcgi;
  uwsgi_temp_path $WORK/ngx-uwsgi;
  scgi_temp_path $WORK/ngx-scgi;
  server {
    listen $HOST:$NGINX_PORT;
    root $WORK/www;
  }
}
NGX
nginx -c "$WORK/nginx.conf"
sleep 0.3
N="http://$HOST:$NGINX_PORT"

rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' "/proc/$BLOBS_PID/status"; echo; }

run() { # name, wrk args...
  local name=$1; shift
  echo "== $name: wrk $*"
  wrk "$@" | grep -E "Latency|Requests/sec|Transfer/sec|requests in|Non-2xx|Socket errors|^ +99%"
}

echo "# blobs-server $("$BIN" --version) vs $(nginx -v 2>&1)"
echo "# $(nproc) cores; each measurement $DUR"
run "nginx GET 10 KiB c50" -t2 -c50 -d"$DUR" --latency "$N/b10k"
run "blobs GET 10 KiB c50 (auth)" -t2 -c50 -d"$DUR" --latency -H "Authorization: $AUTH" "$B/blobs/bench/b10k"
run "nginx GET 10 MiB c4" -t2 -c4 -d"$DUR" "$N/b10m"
run "blobs GET 10 MiB c4 (auth)" -t2 -c4 -d"$DUR" -H "Authorization: $AUTH" "$B/blobs/bench/b10m"
run "nginx GET 1 MiB c10" -t2 -c10 -d"$DUR" "$N/b1m"
run "blobs GET 1 MiB c10 (auth)" -t2 -c10 -d"$DUR" -H "Authorization: $AUTH" "$B/blobs/bench/b1m"
BENCH_RUN=a run "blobs PUT new 10 KiB c50 (fsync before 200)" -t2 -c50 -d"$DUR" --latency -s blobs/server/bench/put.lua "$B"
run "blobs list 1000 ids c10" -t2 -c10 -d"$DUR" --latency -H "Authorization: $AUTH" "$B/blobs/bench/?namespace=list"
echo "== memory: blobs-server before 1000 connections: $(rss)"
run "blobs GET 10 KiB c1000 (auth)" -t2 -c1000 -d"$DUR" -H "Authorization: $AUTH" "$B/blobs/bench/b10k"
echo "== memory: blobs-server after 1000 connections: $(rss)"
head -c 1073741824 /dev/zero > "$WORK/1g"
before=$(rss)
start=$(date +%s.%N)
curl -sf -X PUT -H "Authorization: $AUTH" -T "$WORK/1g" "$B/blobs/bench/big1g" -o /dev/null
end=$(date +%s.%N)
echo "== memory: 1 GiB upload in $(python3 -c "print(round($end-$start,2))") s; before: $before; after: $(rss)"
echo "== storage: $(curl -sf -H "Authorization: $AUTH" "$B/usage/bench")"
