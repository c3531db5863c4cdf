#!/usr/bin/env bash
# Why the data path hand-writes HTTP/1.1: lastmile-cache's hit path
# (sendfile from the slice file) against a hyper server that reads the same
# bytes into buffers and streams them (examples/hyper_file_server.rs), both
# on one thread on CPU 0, same wrk load (random 1 MiB ranges of the 64 MiB
# object, 64 connections) from CPU 1. Prints server CPU seconds per GB.
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
HYPER_PORT=18093

need wrk curl openssl taskset
build
(cd "$ROOT" && cargo build --release -p lastmile-cache --example hyper_file_server >&2)
make_content
trap 'stop_all; [ -n "${hyper_pid:-}" ] && kill "$hyper_pid" 2>/dev/null' EXIT
stop_all
start_origin
start_lastmile
verify_file lastmile 64m.bin   # warms the cache
taskset -c "$SERVER_CPU" "$TARGET_DIR/release/examples/hyper_file_server" \
  "127.0.0.1:$HYPER_PORT" "$BENCH_DIR/origin/64m.bin" &
hyper_pid=$!
wait_port "$HYPER_PORT"

echo "| round | server | req/s | server CPU s | GB | CPU s/GB |"
echo "| --- | --- | --- | --- | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
  for server in lastmile hyper; do
    if [ "$server" = hyper ]; then
      pid=$hyper_pid; url="http://127.0.0.1:$HYPER_PORT/64m.bin"; host="Host: x"
    else
      pid="$(server_pid lastmile)"; url="$(url_of lastmile 64m.bin)"; host="$(host_header_of lastmile)"
    fi
    cpu0="$(cpu_seconds "$pid")"
    out="$(taskset -c "$CLIENT_CPU" wrk -t1 -c64 -d"${DURATION}s" -s "$HERE/ranges.lua" -H "$host" "$url" 2>&1)"
    cpu1="$(cpu_seconds "$pid")"
    rps="$(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
    gb="$(echo "$out" | awk '/read$/ { v = $(NF-1); if (v ~ /GB$/) v = v + 0; else if (v ~ /MB$/) v = v / 1024; print v }')"
    cpu="$(echo "$cpu1 - $cpu0" | bc)"
    printf '| %s | %s | %s | %s | %s | %.3f |\n' "$round" "$server" "$rps" "$cpu" "$gb" "$(echo "$cpu / $gb" | bc -l)"
  done
done
