# Sourced by the comparison scripts: starts nginx serving $1/www on 127.0.0.1:$2, with its
# files, pid and logs under $1. The configuration is the fair one for static files:
# sendfile, corked writes, no access log, keep-alive for the whole run.
start_nginx() {
  local work=$1 port=$2
  cat > "$work/nginx.conf" <<NGX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/ngx-body;
  proxy_temp_path $work/ngx-proxy;
  fastcgi_temp_path $work/ngx-fcgi;
  uwsgi_temp_path $work/ngx-uwsgi;
  scgi_temp_path $work/ngx-scgi;
  server {
    listen 127.0.0.1:$port;
    root $work/www;
  }
}
NGX
  nginx -c "$work/nginx.conf"
  sleep 0.3
}

# The pids of nginx's worker processes (the master only accepts and supervises).
nginx_workers() {
  ps -o pid= --ppid "$(cat "$1/nginx.pid")" | tr -d ' ' | paste -sd,
}

# Writes a token file for the user `bench` to $1/tokens and prints the `Authorization`
# header's value that goes with it.
bench_token() {
  local token
  token=bench-token-$(date +%s)
  echo "bench:$token" > "$1/tokens"
  printf 'Token %s' "$(printf 'bench:%s' "$token" | base64 -w0)"
}

# CPU seconds (user + system) used so far by the processes whose pids are given.
cpu_seconds() {
  for p in "$@"; do cut -d' ' -f14,15 "/proc/$p/stat"; done |
    awk -v t="$(getconf CLK_TCK)" '{s += $1 + $2} END {printf "%.2f", s / t}'
}
