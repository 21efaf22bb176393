#!/usr/bin/env bash
# Side-by-side load test of blobs-server and nginx serving the same files on 127.0.0.1.
# Needs: nginx, wrk, curl, python3, the optimised build (cargo build --profile dist -p blobs-server).
# Usage: [ROUNDS=3] [ONLY=regex] [BLOBS_SERVER_BIN_B=path] blobs/server/bench/compare-nginx.sh [DURATION]
#   (default 10s per measurement). BLOBS_SERVER_BIN_B: a second build, served beside the first
#   and measured in the same rounds on the GETs ("blobsB-..."), to compare a change A/B
#   (B serves only the three GET files: no listing blobs, no uploads).
# Prints a table of results; BENCHMARKS.md records one run and how to read it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DUR=${1:-10s}
BIN=${BLOBS_SERVER_BIN:-target/dist/blobs-server}
[ -x "$BIN" ] || { echo "build first: cargo build --profile dist -p blobs-server (or set BLOBS_SERVER_BIN)" >&2; exit 1; }
HOST=127.0.0.1
NGINX_PORT=18180
BLOBS_PORT=18181
GROUP_PORT=18182
B_PORT=18183
BIN_B=${BLOBS_SERVER_BIN_B:-}
[ -z "$BIN_B" ] || [ -x "$BIN_B" ] || { echo "BLOBS_SERVER_BIN_B=$BIN_B is not an executable" >&2; exit 1; }
WORK=$(mktemp -d /tmp/blobs-bench.XXXXXX)
chmod 755 "$WORK" # nginx's workers run as another user
cleanup() {
  [ -n "${BLOBS_PID:-}" ] && kill "$BLOBS_PID" 2>/dev/null || true
  [ -n "${GROUP_PID:-}" ] && kill "$GROUP_PID" 2>/dev/null || true
  [ -n "${B_PID:-}" ] && kill "$B_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=nginx.sh
source blobs/server/bench/nginx.sh
AUTH=$(bench_token "$WORK")
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
# A second server with group commit (`--durability group`), for the PUT measurement only.
"$BIN" --listen "$HOST:$GROUP_PORT" --data-dir "$WORK/data-group" --tokens "$WORK/tokens" \
  --durability group >"$WORK/group.out" 2>"$WORK/group.err" &
GROUP_PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/blobs.out" 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do grep -q listening "$WORK/group.out" 2>/dev/null && break; sleep 0.1; done
B="http://$HOST:$BLOBS_PORT"
G="http://$HOST:$GROUP_PORT"
C="http://$HOST:$B_PORT"
if [ -n "$BIN_B" ]; then
  "$BIN_B" --listen "$HOST:$B_PORT" --data-dir "$WORK/data-b" --tokens "$WORK/tokens" \
    >"$WORK/b.out" 2>"$WORK/b.err" &
  B_PID=$!
  for _ in $(seq 50); do grep -q listening "$WORK/b.out" 2>/dev/null && break; sleep 0.1; done
fi
for f in b10k b1m b10m; do
  curl -sf -X PUT -H "Authorization: $AUTH" --data-binary @"$WORK/www/$f" "$B/blobs/bench/$f" >/dev/null
  [ -z "$BIN_B" ] || curl -sf -X PUT -H "Authorization: $AUTH" --data-binary @"$WORK/www/$f" "$C/blobs/bench/$f" >/dev/null
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

start_nginx "$WORK" "$NGINX_PORT"
N="http://$HOST:$NGINX_PORT"

rss() { awk '/VmRSS|VmHWM|RssAnon/ {printf "%s %d MiB  ", $1, $2/1024}' "/proc/$BLOBS_PID/status"; echo; }

mkdir -p "$WORK/out"
NGINX_PIDS="$(cat "$WORK/nginx.pid") $(ps -o pid= --ppid "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')"
run() { # name, wrk args...
  local name=$1; shift
  # ONLY=regex restricts a run to some measurements (the summary then skips the others).
  [[ $name =~ ${ONLY:-.} ]] || return 0
  local out="$WORK/out/$name.$ROUND" pids
  case $name in nginx-*) pids=$NGINX_PIDS ;; *-group) pids=$GROUP_PID ;; blobsB-*) pids=$B_PID ;; *) pids=$BLOBS_PID ;; esac
  # shellcheck disable=SC2086
  local before; before=$(cpu_seconds $pids)
  wrk "$@" > "$out"
  # shellcheck disable=SC2086
  echo "server_cpu_s $(python3 -c "print($(cpu_seconds $pids) - $before)")" >> "$out"
  printf '%-28s round %s: %s req/s, %s/s, p99 %s, server CPU %s s, load %s\n' "$name" "$ROUND" \
    "$(awk '/Requests\/sec/ {print $2}' "$out")" "$(awk '/Transfer\/sec/ {print $2}' "$out")" \
    "$(awk '$1 == "99%" {print $2}' "$out")" "$(awk '/server_cpu_s/ {print $2}' "$out")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

# A GET of blobs-server, and of build B if there is one: A and B take turns going first,
# so that neither always runs right after nginx.
blobs_get() { # size, wrk flags
  local size=$1; shift
  if [ -n "$BIN_B" ] && ((ROUND % 2 == 0)); then
    run "blobsB-get-$size" "$@" -H "Authorization: $AUTH" "$C/blobs/bench/b$size"
  fi
  run "blobs-get-$size" "$@" -H "Authorization: $AUTH" "$B/blobs/bench/b$size"
  if [ -n "$BIN_B" ] && ((ROUND % 2 == 1)); then
    run "blobsB-get-$size" "$@" -H "Authorization: $AUTH" "$C/blobs/bench/b$size"
  fi
}

echo "# blobs-server $("$BIN" --version) vs $(nginx -v 2>&1)"
[ -z "$BIN_B" ] || echo "# A: $BIN ($(stat -c %y "$BIN")); B: $BIN_B ($(stat -c %y "$BIN_B"))"
echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); each measurement $DUR; rounds ${ROUNDS:=3}"
for ROUND in $(seq "$ROUNDS"); do
  # Interleaved, so that load from elsewhere hits both sides alike.
  run nginx-get-10k -t2 -c50 -d"$DUR" --latency "$N/b10k"
  blobs_get 10k -t2 -c50 -d"$DUR" --latency
  run nginx-get-10m -t2 -c4 -d"$DUR" "$N/b10m"
  blobs_get 10m -t2 -c4 -d"$DUR"
  run nginx-get-1m -t2 -c10 -d"$DUR" "$N/b1m"
  blobs_get 1m -t2 -c10 -d"$DUR"
  run blobs-put-10k -t2 -c50 -d"$DUR" --latency -s blobs/server/bench/put.lua "$B"
  run blobs-put-10k-group -t2 -c50 -d"$DUR" --latency -s blobs/server/bench/put.lua "$G"
  run blobs-list-1000 -t2 -c10 -d"$DUR" --latency -H "Authorization: $AUTH" "$B/blobs/bench/?namespace=list"
done
python3 - "$WORK/out" <<'PY'
import os, re, statistics, sys
out = sys.argv[1]
def by_round(f):
    name, round_ = f.rsplit(".", 1)
    return name, int(round_)
def vals(name, key):
    vals = []
    for f in sorted(os.listdir(out), key=by_round):
        if f.rsplit(".", 1)[0] != name:
            continue
        text = open(os.path.join(out, f)).read()
        if key == "rps":
            vals.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
        elif key == "cpu_us":
            # Server CPU time per request: independent of how busy the rest of the machine is.
            reqs = int(re.search(r"(\d+) requests in", text).group(1))
            vals.append(float(re.search(r"server_cpu_s ([\d.]+)", text).group(1)) / reqs * 1e6)
        elif key == "mibs":
            m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
            vals.append(float(m.group(1)) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(2)])
        else:
            m = re.search(r"^\s+99%\s+([\d.]+)(\w+)", text, re.M)
            vals.append(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)])
    if not vals:
        raise LookupError(name)  # not measured in this run (ONLY)
    return vals  # in the order of the rounds
def val(name, key):
    return statistics.median(vals(name, key))
print("\n# medians over rounds")
for label, a, b, key in [
    ("GET 10 KiB c50 req/s", "blobs-get-10k", "nginx-get-10k", "rps"),
    ("GET 10 MiB c4 MiB/s", "blobs-get-10m", "nginx-get-10m", "mibs"),
    ("GET 1 MiB c10 MiB/s", "blobs-get-1m", "nginx-get-1m", "mibs"),
]:
    try:
        x, y = val(a, key), val(b, key)
        cx, cy = val(a, "cpu_us"), val(b, "cpu_us")
    except LookupError:
        continue
    print(f"{label:24} blobs-server {x:10.1f}   nginx {y:10.1f}   ratio {x / y:.2f}   "
          f"server CPU per request: {cx:.1f} vs {cy:.1f} us (nginx/blobs {cy / cx:.2f})")
    # Each round's two cells ran seconds apart, so a slow spell of the machine hits both: the
    # median of the rounds' ratios is steadier than the ratio of the two medians.
    ratios = [p / q for p, q in zip(vals(a, key), vals(b, key))]
    print(f"{'  by round':24} ratio " + " ".join(f"{r:.2f}" for r in ratios)
          + f" (median {statistics.median(ratios):.3f})")
    try:
        name_b = a.replace("blobs-", "blobsB-")
        xb, cb = val(name_b, key), val(name_b, "cpu_us")
    except LookupError:
        continue
    # Paired by round: B against A measured next to it.
    per_round = [q / p for p, q in zip(vals(a, key), vals(name_b, key))]
    cpu_round = [q / p for p, q in zip(vals(a, "cpu_us"), vals(name_b, "cpu_us"))]
    print(f"{'  the same, build B':24} blobs-server {xb:10.1f}   nginx {y:10.1f}   ratio {xb / y:.2f}   "
          f"server CPU per request: {cb:.1f} vs {cy:.1f} us (nginx/blobs {cy / cb:.2f})")
    ratios_b = [p / q for p, q in zip(vals(name_b, key), vals(b, key))]
    print(f"{'  build B by round':24} ratio " + " ".join(f"{r:.2f}" for r in ratios_b)
          + f" (median {statistics.median(ratios_b):.3f})")
    print(f"{'  B/A by round':24} {key} " + " ".join(f"{r:.3f}" for r in per_round)
          + f" (median {statistics.median(per_round):.3f}); CPU per request "
          + " ".join(f"{r:.3f}" for r in cpu_round) + f" (median {statistics.median(cpu_round):.3f})")
if any(f.startswith("blobs-put-10k.") for f in os.listdir(out)):
  print(f"{'PUT 10 KiB c50, default':24} blobs-server {val('blobs-put-10k', 'rps'):10.1f}   CPU {val('blobs-put-10k', 'cpu_us'):.1f} us/req   p99 {val('blobs-put-10k', 'p99'):.1f} ms   vs Soledad 1270 (no fsync): {val('blobs-put-10k', 'rps') / 1270:.1f}x")
if any(f.startswith("blobs-put-10k.") for f in os.listdir(out)):
  # The default durability (auto) logs each switch from shared syncs to an upload's own fsyncs.
  switches = sum("syncs are slow" in line for line in open(os.path.join(out, "..", "blobs.err")))
  print(f"{'':24} (durability auto: {switches} switches to fsyncs)")
if any(f.startswith("blobs-put-10k-group.") for f in os.listdir(out)):
  print(f"{'PUT 10 KiB c50, group':24} blobs-server {val('blobs-put-10k-group', 'rps'):10.1f}   CPU {val('blobs-put-10k-group', 'cpu_us'):.1f} us/req   p99 {val('blobs-put-10k-group', 'p99'):.1f} ms   vs Soledad 1270 (no fsync): {val('blobs-put-10k-group', 'rps') / 1270:.1f}x")
if any(f.startswith("blobs-list-1000.") for f in os.listdir(out)):
  print(f"{'list 1000 c10 req/s':24} blobs-server {val('blobs-list-1000', 'rps'):10.1f}   CPU {val('blobs-list-1000', 'cpu_us'):.1f} us/req   p99 {val('blobs-list-1000', 'p99'):.1f} ms   vs Soledad 200: {val('blobs-list-1000', 'rps') / 200:.1f}x")
PY

[[ memory =~ ${ONLY:-.} ]] || exit 0
echo "== memory: blobs-server before 1000 connections: $(rss)"
ROUND=1 run blobs-get-10k-c1000 -t2 -c1000 -d"$DUR" -H "Authorization: $AUTH" "$B/blobs/bench/b10k"
echo "== memory: blobs-server after 1000 connections: $(rss)"
head -c 1073741824 /dev/zero > "$WORK/1g"
before=$(rss)
start=$(date +%s.%N)
curl -sf -X PUT -H "Authorization: $AUTH" -T "$WORK/1g" "$B/blobs/bench/big1g" -o /dev/null
end=$(date +%s.%N)
echo "== memory: 1 GiB upload in $(python3 -c "print(round($end-$start,2))") s; before: $before; after: $(rss)"
echo "== storage: $(curl -sf -H "Authorization: $AUTH" "$B/usage/bench")"
