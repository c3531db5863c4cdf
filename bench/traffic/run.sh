#!/usr/bin/env bash
# Traffic benchmarks (docs/benchmarks.md, "Traffic ingestion and dashboards"),
# against a release portal over HTTPS (its self-signed certificate):
#  1. ingestion: 10,000 nodes' agent reports, posted by wrk as fast as the
#     portal takes them, on kept-alive connections and with a new TLS
#     connection per report; compared with the 333 reports/s that 10,000
#     nodes reporting every 30 s send;
#  2. dashboards with 100 nodes' 30-day history (or as many as asked): the Overview page over 30
#     days (rendered on the server, charts included), a node's page, and
#     the same data from the JSON API (hyperfine, each run a curl: process
#     start, TLS handshake, request).
# On SQLite, then PostgreSQL (a throw-away database on
# LASTMILE_BENCH_POSTGRES_URL's server, default the local one).
# Needs wrk, hyperfine, curl and psql.
# Usage: bench/traffic/run.sh [seconds] [sqlite|postgres|both] [dashboard nodes, 100]
# (a third argument other than 100 measures only the dashboards, to see how
# they scale with the fleet).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in wrk hyperfine curl psql; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk hyperfine curl postgresql-client)" >&2; exit 1; }
done
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SECONDS_EACH="${1:-30}"
BACKENDS="${2:-both}"
DASHBOARD_NODES="${3:-100}"
PG_ADMIN="${LASTMILE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT=18443
BASE="https://127.0.0.1:$PORT"
NEEDED=$(awk 'BEGIN { printf "%.1f", 10000 / 30 }')
WORK="$(mktemp -d)"
PORTAL_PID=""
PG_DBS=()
cleanup() {
  [ -n "$PORTAL_PID" ] && kill "$PORTAL_PID" 2>/dev/null && wait "$PORTAL_PID" 2>/dev/null || true
  for db in "${PG_DBS[@]}"; do psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --quiet --release -p server --bin lastmile-portal --example traffic_fixture
PORTAL="$TARGET/release/lastmile-portal"
FIXTURE="$TARGET/release/examples/traffic_fixture"

database_url() { # backend name
  if [ "$1" = sqlite ]; then
    echo "sqlite://$WORK/$2.db"
  else
    local db="lastmile_bench_$2_$$"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    echo "${PG_ADMIN%/*}/$db"
  fi
}

start_portal() { # database URL
  mkdir -p "$WORK/data"
  LASTMILE_LOG=warn "$PORTAL" --data-dir "$WORK/data" --database-url "$1" --self-signed \
    --listen "127.0.0.1:$PORT" --report-interval-secs 30 >"$WORK/portal.log" 2>&1 &
  PORTAL_PID=$!
  for _ in $(seq 1 100); do
    curl -fsk "$BASE/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  cat "$WORK/portal.log"; exit 1
}

stop_portal() {
  kill "$PORTAL_PID"; wait "$PORTAL_PID" 2>/dev/null || true; PORTAL_PID=""
}

# Signs in as the fixture's administrator (cookie jar $WORK/cookies) and
# makes an API token ($TOKEN).
sign_in() {
  rm -f "$WORK/cookies"
  curl -fsk -c "$WORK/cookies" -H 'Accept: application/json' \
    --data-urlencode username=bench --data-urlencode password=bench-password-1 "$BASE/api/login" >/dev/null
  TOKEN=$(curl -fsk -b "$WORK/cookies" -H 'Accept: application/json' --data-urlencode name=bench \
    "$BASE/api/create_api_token" | sed -E 's/.*"token":"([^"]+)".*/\1/')
}

wrk_rate() { awk '/Requests\/sec/ {print $2}'; }

ingestion() { # backend
  local url
  url=$(database_url "$1" ingest)
  "$FIXTURE" "$url" 10000 0 0 "$WORK/credentials"
  start_portal "$url"
  echo "-- $1: reports from 10,000 nodes, kept-alive connections (2 threads, 32 connections, ${SECONDS_EACH}s)"
  local out rate
  out=$(THREADS=2 CREDENTIALS="$WORK/credentials" wrk -t2 -c32 -d"${SECONDS_EACH}s" --latency \
    -s "$ROOT/bench/traffic/report.lua" "$BASE")
  echo "$out"
  rate=$(echo "$out" | wrk_rate)
  echo "== $1 ingestion: $rate reports/s; 10,000 nodes every 30 s need $NEEDED/s: $(awk -v r="$rate" -v n="$NEEDED" 'BEGIN { printf "%.1f", r / n }')x"
  echo "-- $1: a new TLS connection per report (2 threads, 32 connections, ${SECONDS_EACH}s)"
  out=$(CLOSE=1 THREADS=2 CREDENTIALS="$WORK/credentials" wrk -t2 -c32 -d"${SECONDS_EACH}s" --latency \
    -s "$ROOT/bench/traffic/report.lua" "$BASE")
  echo "$out"
  rate=$(echo "$out" | wrk_rate)
  echo "== $1 ingestion, new connection per report: $rate reports/s: $(awk -v r="$rate" -v n="$NEEDED" 'BEGIN { printf "%.1f", r / n }')x"
  # What was ingested is there: the fleet's bytes over the last hour.
  sign_in
  curl -fsk -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/traffic?range=1h&chart=efficiency" \
    | grep -oE '"summary":\{[^}]*' | head -c 300; echo
  echo "portal resident memory: $(ps -o rss= -p "$PORTAL_PID" | awk '{printf "%.0f MiB", $1/1024}')"
  stop_portal
  if [ "$1" = sqlite ]; then
    echo "SQLite file after the runs: $(du -sh "$WORK/ingest.db" | cut -f1) (+ WAL $(du -sh "$WORK/ingest.db-wal" 2>/dev/null | cut -f1))"
  fi
}

dashboards() { # backend
  local url
  url=$(database_url "$1" dashboard)
  "$FIXTURE" "$url" "$DASHBOARD_NODES" 30 "$DASHBOARD_NODES" "$WORK/credentials-dashboard"
  # What 100 nodes' history costs on disk (tables and indexes).
  if [ "$1" = sqlite ]; then
    echo "SQLite file with the history: $(du -h "$WORK/dashboard.db" | cut -f1)"
  else
    echo "traffic tables with the history: $(psql -At "$url" -c "SELECT pg_size_pretty(SUM(pg_total_relation_size(t::regclass))) FROM unnest(ARRAY['traffic_minute','traffic_hour','traffic_day','traffic_fleet_minute','traffic_fleet_hour','traffic_fleet_day']) t")"
  fi
  start_portal "$url"
  sign_in
  # The page really is the dashboard (not a sign-in redirect): three charts.
  local charts
  charts=$(curl -fsk -b "$WORK/cookies" "$BASE/?range=30d" | grep -o '<svg ' | wc -l)
  [ "$charts" = 3 ] || { echo "the 30-day Overview did not render its charts"; exit 1; }
  echo "-- $1: $DASHBOARD_NODES nodes, 30 days of history"
  hyperfine --style basic --warmup 3 --runs 30 --export-markdown "$WORK/dash-$1.md" \
    -n "Overview, 30 d" "curl -fsk -o /dev/null -b $WORK/cookies '$BASE/?range=30d'" \
    -n "Overview, 1 d" "curl -fsk -o /dev/null -b $WORK/cookies '$BASE/?range=1d'" \
    -n "node page, 30 d" "curl -fsk -o /dev/null -b $WORK/cookies '$BASE/nodes/bench0?range=30d'" \
    -n "API, fleet 30 d" "curl -fsk -o /dev/null -H 'Authorization: Bearer $TOKEN' '$BASE/api/v1/traffic?range=30d'" \
    -n "healthz (curl + TLS floor)" "curl -fsk -o /dev/null '$BASE/healthz'"
  cat "$WORK/dash-$1.md"
  echo "page size: $(curl -fsk -b "$WORK/cookies" "$BASE/?range=30d" | wc -c) bytes"
  stop_portal
}

for backend in sqlite postgres; do
  [ "$BACKENDS" = both ] || [ "$BACKENDS" = "$backend" ] || continue
  echo "===== $backend"
  if [ "$DASHBOARD_NODES" = 100 ]; then ingestion "$backend"; fi
  dashboards "$backend"
done
