# Shared setup for the cache benchmarks: content, the origin (nginx serving
# static files), the peer (nginx proxy_cache + slice 1m + proxy_cache_lock,
# one worker) and lastmile-cache (one thread), on one machine and one disk.
# Sourced by run.sh and hyper-vs-sendfile.sh; results in docs/benchmarks.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/lastmile-bench}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LASTMILE_BIN="$TARGET_DIR/release/lastmile-cache"

ORIGIN_FOR_NGINX=18081
ORIGIN_FOR_LASTMILE=18082
NGINX_PORT=18090
LASTMILE_PORT=18091
LASTMILE_ADMIN=18092
ORIGIN_HOST=bench.origin
# The server under test runs on CPU 0, load generators on CPU 1.
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

log() { printf '== %s\n' "$*" >&2; }

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx wrk curl)" >&2; exit 1; }
  done
}

build() {
  log "building lastmile-cache (release)"
  (cd "$ROOT" && cargo build --release -p lastmile-cache >&2)
}

# Deterministic, verifiable content: AES-128-CTR of zeros with a fixed key.
make_content() {
  mkdir -p "$BENCH_DIR/origin"
  local name size
  for spec in "1m:1048576" "64m:67108864" "4g:4294967296"; do
    name="${spec%%:*}.bin"; size="${spec##*:}"
    if [ "$(stat -c %s "$BENCH_DIR/origin/$name" 2>/dev/null || echo 0)" != "$size" ]; then
      log "generating $name ($size bytes)"
      # openssl is stopped by SIGPIPE once head has enough.
      { openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
          -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null || true; } \
        | head -c "$size" > "$BENCH_DIR/origin/$name"
    fi
  done
  (cd "$BENCH_DIR/origin" && sha256sum 1m.bin 64m.bin 4g.bin > "$BENCH_DIR/sums")
}

write_nginx_configs() {
  cat > "$BENCH_DIR/origin.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 65536;
user root;
pid $BENCH_DIR/origin.pid;
error_log $BENCH_DIR/origin-error.log warn;
events { worker_connections 8192; }
http {
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  log_format bytes '\$server_port \$uri "\$http_range" \$status \$body_bytes_sent';
  server {
    listen 127.0.0.1:$ORIGIN_FOR_NGINX;
    root $BENCH_DIR/origin;
    access_log $BENCH_DIR/origin-nginx.log bytes;
  }
  server {
    listen 127.0.0.1:$ORIGIN_FOR_LASTMILE;
    root $BENCH_DIR/origin;
    access_log $BENCH_DIR/origin-lastmile.log bytes;
  }
}
CONF
  cat > "$BENCH_DIR/peer.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 65536;
user root;
pid $BENCH_DIR/peer.pid;
error_log $BENCH_DIR/peer-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  proxy_cache_path $BENCH_DIR/nginx-cache levels=1:2 keys_zone=peer:64m
                   max_size=20g inactive=7d use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_FOR_NGINX;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      slice 1m;
      proxy_cache peer;
      proxy_cache_key \$uri\$is_args\$args\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_pass http://origin;
    }
  }
}
CONF
}

start_origin() {
  write_nginx_configs
  : > "$BENCH_DIR/origin-nginx.log"
  : > "$BENCH_DIR/origin-lastmile.log"
  taskset -c "$CLIENT_CPU" nginx -c "$BENCH_DIR/origin.conf"
  wait_port "$ORIGIN_FOR_NGINX"
}

# Both caches start empty.
start_peer() {
  rm -rf "$BENCH_DIR/nginx-cache"
  mkdir -p "$BENCH_DIR/nginx-cache"
  taskset -c "$SERVER_CPU" nginx -c "$BENCH_DIR/peer.conf"
  wait_port "$NGINX_PORT"
}

start_lastmile() {
  rm -rf "$BENCH_DIR/lastmile-cache"
  mkdir -p "$BENCH_DIR/lastmile-cache"
  taskset -c "$SERVER_CPU" "$LASTMILE_BIN" \
    --listen "127.0.0.1:$LASTMILE_PORT" --admin "127.0.0.1:$LASTMILE_ADMIN" \
    --drive "$BENCH_DIR/lastmile-cache:20G" --no-default-hosts --allow-host "$ORIGIN_HOST" \
    --resolve "$ORIGIN_HOST=127.0.0.1:$ORIGIN_FOR_LASTMILE" --slice-size 1M --threads 1 \
    --log warn 2>> "$BENCH_DIR/lastmile.log" &
  echo $! > "$BENCH_DIR/lastmile.pid"
  wait_port "$LASTMILE_PORT"
}

# Stops the server whose pid is in $BENCH_DIR/<name>.pid and waits for it.
stop_server() {
  local pidfile="$BENCH_DIR/$1.pid"
  if [ -f "$pidfile" ]; then
    local pid; pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$pidfile"
  fi
}

stop_all() {
  stop_server lastmile
  stop_server peer
  stop_server origin
}

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# The process that serves: nginx's single worker, or lastmile-cache.
server_pid() {
  case "$1" in
    nginx) pgrep -P "$(cat "$BENCH_DIR/peer.pid")" | head -1 ;;
    lastmile) cat "$BENCH_DIR/lastmile.pid" ;;
  esac
}

# URL and extra curl/wrk header for a file on each server.
url_of() {
  case "$1" in
    nginx) echo "http://127.0.0.1:$NGINX_PORT/$2" ;;
    lastmile) echo "http://127.0.0.1:$LASTMILE_PORT/$2" ;;
  esac
}
host_header_of() {
  case "$1" in
    nginx) echo "Host: 127.0.0.1" ;;
    lastmile) echo "Host: $ORIGIN_HOST" ;;
  esac
}

# CPU seconds (user + system) a process has used.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

# CPU seconds the whole machine has been busy (every CPU, everything but
# idle, I/O wait and time the hypervisor took). Over loopback the receiver's TCP work is charged to
# whichever process happens to run it, server or client, so this total is
# the fair cost of serving the same bytes.
machine_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}

# CPU seconds one core has been busy, whatever ran there: the server's
# process and the kernel work done on that core on its behalf, including
# softirqs that ran while the process slept (which /proc/<pid>/stat misses).
core_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" -v cpu="cpu$1" '$1 == cpu { printf "%.3f\n", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}

# Over loopback the receiver's TCP work runs on the sender's core: every
# segment the server sends is received (and charged) on the server's core,
# and how much of a response the client's acknowledgements send instead
# depends on timing, so per-process CPU says as much about who happened to
# send as about the server. Receive flow steering on lo makes each side
# receive on the core its reader runs on, as two hosts would. The old
# settings come back with restore_receive_steering.
RFS_SAVED=()
RFS_FILES=(/sys/class/net/lo/queues/rx-0/rps_cpus /sys/class/net/lo/queues/rx-0/rps_flow_cnt /proc/sys/net/core/rps_sock_flow_entries)
steer_receive_to_readers() {
  RFS_SAVED=()
  for f in "${RFS_FILES[@]}"; do RFS_SAVED+=("$(cat "$f")"); done
  local all; all="$(printf '%x' $(( (1 << $(nproc)) - 1 )))"
  echo "$all" > "${RFS_FILES[0]}" && echo 32768 > "${RFS_FILES[1]}" && echo 32768 > "${RFS_FILES[2]}"
}
restore_receive_steering() {
  [ "${#RFS_SAVED[@]}" -eq 0 ] && return 0
  local i
  for i in "${!RFS_FILES[@]}"; do echo "${RFS_SAVED[$i]}" > "${RFS_FILES[$i]}" || true; done
  RFS_SAVED=()
}

rss_kib() {
  awk '/^VmRSS/ { print $2 }' "/proc/$1/status"
}

# Body bytes the origin sent to one of the two caches since the log was emptied.
origin_bytes() {
  local log="$BENCH_DIR/origin-$1.log"
  awk -v file="/$2" '$2 == file { sum += $NF } END { print sum + 0 }' "$log"
}

reset_origin_log() {
  : > "$BENCH_DIR/origin-$1.log"
}

# Fetches a whole file through a server and checks its SHA-256.
verify_file() {
  local server="$1" file="$2"
  local want got
  want="$(awk -v f="$file" '$2 == f { print $1 }' "$BENCH_DIR/sums")"
  got="$(curl -s -H "$(host_header_of "$server")" "$(url_of "$server" "$file")" | sha256sum | cut -d' ' -f1)"
  if [ "$want" != "$got" ]; then
    echo "$server served wrong bytes for $file" >&2
    return 1
  fi
}
