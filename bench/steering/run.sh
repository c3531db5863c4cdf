#!/usr/bin/env bash
# Steering benchmark (docs/benchmarks.md, "Steering"):
#  1. lookups in process over one million prefixes (criterion);
#  2. steering requests per second over HTTP (wrk) against a release portal
#     whose database holds one million prefixes on 500 healthy nodes, and,
#     in the same run, nginx answering the same URL with a fixed JSON body
#     of the same size from memory: the ceiling for any HTTP answer on this
#     machine, so the ratio says how much of it steering keeps.
# Needs: wrk and nginx (Debian packages). Usage: bench/steering/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nginx curl)" >&2; exit 1; }
done
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECONDS_EACH="${1:-15}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== in-process lookups (criterion)"
cargo bench --quiet -p app --features ssr --bench steering 2>&1 | grep -E "^steering|time:|built an index"

echo "== HTTP"
cargo build --quiet --release -p server --bin lastmile-portal --example steering_fixture
"$TARGET/release/examples/steering_fixture" "sqlite://$WORK/portal.db" 1000000 500
"$TARGET/release/lastmile-portal" --data-dir "$WORK" --database-url "sqlite://$WORK/portal.db" \
  --listen 127.0.0.1:18080 --report-interval-secs 3600 >"$WORK/portal.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:18080/api/v1/steer?client=16.0.0.1" 2>/dev/null | grep -q '"use_cdn":false'; then break; fi
  sleep 1
done
SAMPLE="$(curl -fsS "http://127.0.0.1:18080/api/v1/steer?client=16.1.2.3")"
echo "sample answer: $SAMPLE"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:18081;
    location = /api/v1/steer { default_type application/json; return 200 '$SAMPLE'; }
  }
}
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
sleep 1

run() {
  wrk -t2 -c64 -d"${SECONDS_EACH}s" --latency -s "$ROOT/bench/steering/random-client.lua" "$1"
}
echo "-- portal steering (64 connections, ${SECONDS_EACH}s)"
PORTAL_OUT="$(run http://127.0.0.1:18080)"; echo "$PORTAL_OUT"
echo "-- nginx fixed answer (64 connections, ${SECONDS_EACH}s)"
NGINX_OUT="$(run http://127.0.0.1:18081)"; echo "$NGINX_OUT"
P=$(echo "$PORTAL_OUT" | awk '/Requests\/sec/ {print $2}')
N=$(echo "$NGINX_OUT" | awk '/Requests\/sec/ {print $2}')
echo "== steering $P req/s, nginx $N req/s, ratio $(awk -v p="$P" -v n="$N" 'BEGIN { printf "%.2f", p / n }')"
echo "portal resident memory: $(ps -o rss= -p "${PIDS[0]}" | awk '{printf "%.0f MiB", $1/1024}')"
