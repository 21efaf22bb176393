#!/usr/bin/env bash
# The plain method: GET of one 10 KiB blob at 50 connections, nginx and one or more
# blobs-server builds taking turns in short wrk cells, nothing else running. It checks
# compare-nginx.sh, whose run has many measurements between two GETs of one server.
# Needs: nginx, wrk, curl, the builds to measure.
# Usage: [ROUNDS=10] [WARMUP=1] [CONNECTIONS=50] [REQUEST=put] blobs/server/bench/alternate.sh CELL BIN...
#   CELL: the length of one wrk cell (5s, 10s); BIN: blobs-server binaries, each served on
#   its own port from its own data directory. WARMUP cells of each server run first and are
#   not counted. The order turns round every round (nginx first, then last), so that
#   neither side always follows the other. REQUEST=put measures durable uploads of new
#   10 KiB blobs instead (bench/put.lua; no nginx), each build against the first, with the
#   data under BENCH_TMP (default /tmp; its filesystem is printed: tmpfs would make the
#   fsyncs free and the figures meaningless).
# Prints every cell, then per build the ratio to nginx (or to the first build) round by
# round (each round's cells are seconds apart, so the machine's slow spells hit both) and
# its median. A cell with socket errors or answers other than 2xx stops the run.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,17p "$0" >&2; exit 2; }
CELL=$1; shift
BINS=()
for b in "$@"; do
  [ -x "$b" ] || { echo "$b is not an executable" >&2; exit 1; }
  BINS+=("$(realpath "$b")")
done
cd "$(dirname "$0")/../../.."
HOST=127.0.0.1
NGINX_PORT=18190
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/blobs-alt.XXXXXX")
chmod 755 "$WORK" # nginx's workers run as another user
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=nginx.sh
source blobs/server/bench/nginx.sh
AUTH=$(bench_token "$WORK")
mkdir -p "$WORK/www"
head -c 10240 /dev/urandom > "$WORK/www/b10k"
chmod -R a+rX "$WORK/www"

URLS=()
for i in "${!BINS[@]}"; do
  port=$((NGINX_PORT + 1 + i))
  "${BINS[$i]}" --listen "$HOST:$port" --data-dir "$WORK/data-$i" --tokens "$WORK/tokens" \
    >"$WORK/server-$i.out" 2>"$WORK/server-$i.err" &
  PIDS+=($!)
  for _ in $(seq 50); do grep -q listening "$WORK/server-$i.out" 2>/dev/null && break; sleep 0.1; done
  url="http://$HOST:$port/blobs/bench/b10k"
  curl -sf -X PUT -H "Authorization: $AUTH" --data-binary @"$WORK/www/b10k" "$url" >/dev/null
  URLS+=("$url")
done
if [ "${REQUEST:-get}" != put ]; then
  start_nginx "$WORK" "$NGINX_PORT"
  NGINX_URL="http://$HOST:$NGINX_PORT/b10k"
  NGINX_PIDS=("$(cat "$WORK/nginx.pid")")
  mapfile -t -O 1 NGINX_PIDS < <(ps -o pid= --ppid "${NGINX_PIDS[0]}" | tr -d ' ')
fi

# One cell: name, round, url, pids whose CPU counts, [auth header]. Appends
# "name round req/s cpu_us_per_request load" to $WORK/cells.
cell() {
  local name=$1 round=$2 url=$3 pids=$4 header=${5:-}
  case $url in "http://$HOST:"*) ;; *) echo "refusing $url: not loopback" >&2; exit 1 ;; esac
  local before out
  # shellcheck disable=SC2086
  before=$(cpu_seconds $pids)
  if [ "$header" = put ]; then
    out=$(wrk -t2 -c"${CONNECTIONS:-50}" -d"$CELL" -s blobs/server/bench/put.lua "$url")
  elif [ -n "$header" ]; then
    out=$(wrk -t2 -c"${CONNECTIONS:-50}" -d"$CELL" -H "$header" "$url")
  else
    out=$(wrk -t2 -c"${CONNECTIONS:-50}" -d"$CELL" "$url")
  fi
  local after
  # shellcheck disable=SC2086
  after=$(cpu_seconds $pids)
  if grep -qE "Non-2xx or 3xx responses|Socket errors" <<<"$out"; then
    echo "$name round $round: errors, not counted as throughput:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps reqs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local cpu_us; cpu_us=$(awk -v a="$after" -v b="$before" -v n="$reqs" 'BEGIN {printf "%.1f", (a - b) / n * 1e6}')
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  [ "$round" -gt 0 ] && echo "$name $round $rps $cpu_us $load" >> "$WORK/cells"
  printf '%-10s round %2s: %10s req/s  %6s us CPU per request  load %s\n' "$name" "$round" "$rps" "$cpu_us" "$load"
}
side() { # name index round
  if [ "${REQUEST:-get}" = put ]; then
    [ "$1" = nginx ] || BENCH_AUTH="$AUTH" cell "$1" "$3" "${URLS[$2]%/b10k}" "${PIDS[$2]}" put
  elif [ "$1" = nginx ]; then
    cell nginx "$3" "$NGINX_URL" "${NGINX_PIDS[*]}"
  else
    cell "$1" "$3" "${URLS[$2]}" "${PIDS[$2]}" "Authorization: $AUTH"
  fi
}

echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); cells of $CELL, ${ROUNDS:=10} rounds, ${WARMUP:=1} warm-up; data on $(stat -f -c %T "$WORK")"
for i in "${!BINS[@]}"; do echo "# build $i: ${BINS[$i]} ($(stat -c %y "${BINS[$i]}"))"; done
: > "$WORK/cells"
for w in $(seq "$WARMUP"); do
  side nginx 0 0
  for i in "${!BINS[@]}"; do side "build$i" "$i" 0; done
  : "$w"
done
for r in $(seq "$ROUNDS"); do
  names=(nginx)
  for i in "${!BINS[@]}"; do names+=("build$i"); done
  if ((r % 2 == 0)); then
    for ((k = ${#names[@]} - 1; k >= 0; k--)); do side "${names[$k]}" "$((k - 1))" "$r"; done
  else
    for k in "${!names[@]}"; do side "${names[$k]}" "$((k - 1))" "$r"; done
  fi
done
if [ "${REQUEST:-get}" = put ]; then
  # How often durability auto found the filesystem's syncs slow and let the uploads fsync
  # their own files instead (the server logs each switch).
  for i in "${!BINS[@]}"; do
    echo "# build $i: $(grep -c 'syncs are slow' "$WORK/server-$i.err" || true) switches from shared syncs to fsyncs"
  done
fi
python3 - "$WORK/cells" "${#BINS[@]}" "${REQUEST:-get}" <<'PY'
import collections, statistics, sys
cells = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    name, r, rps, cpu, load = line.split()
    cells[name][int(r)] = (float(rps), float(cpu))
print()
if sys.argv[3] == "put":
    # Soledad's server: 1,270 uploads/s of 10 KiB at 50 connections, with no fsync.
    first = cells["build0"]
    for i in range(int(sys.argv[2])):
        mine = cells[f"build{i}"]
        rps = [mine[r][0] for r in sorted(mine)]
        print(f"build {i}: durable PUT req/s median {statistics.median(rps):.0f} = "
              f"{statistics.median(rps) / 1270:.2f}x Soledad (rounds {min(rps) / 1270:.2f}-{max(rps) / 1270:.2f}x),"
              f" {statistics.median(m[1] for m in mine.values()):.0f} us CPU per PUT")
        if i:
            ratio = [mine[r][0] / first[r][0] for r in sorted(set(mine) & set(first))]
            print(f"         against build 0 by round " + " ".join(f"{x:.2f}" for x in ratio)
                  + f"; median {statistics.median(ratio):.3f}")
    sys.exit(0)
nginx = cells["nginx"]
for i in range(int(sys.argv[2])):
    mine = cells[f"build{i}"]
    rounds = sorted(set(mine) & set(nginx))
    ratio = [mine[r][0] / nginx[r][0] for r in rounds]
    cpu = [nginx[r][1] / mine[r][1] for r in rounds]
    print(f"build {i}: req/s against nginx by round " + " ".join(f"{x:.2f}" for x in ratio)
          + f"; median {statistics.median(ratio):.3f} (min {min(ratio):.2f}, max {max(ratio):.2f})")
    print(f"         nginx's CPU per request / its own: median {statistics.median(cpu):.3f}"
          f" ({statistics.median(m[1] for m in mine.values()):.1f} vs"
          f" {statistics.median(n[1] for n in nginx.values()):.1f} us)")
PY
