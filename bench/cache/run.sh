#!/usr/bin/env bash
# Cache data path benchmarks: lastmile-cache against nginx (proxy_cache +
# slice 1m + proxy_cache_lock), both with one worker on CPU 0, load
# generators and the origin on CPU 1, in the same run.
#
#   bench/cache/run.sh [warm] [herd] [deep] [memory]    (default: all four)
#
# Environment: BENCH_DIR (default /tmp/lastmile-bench, needs ~13 GB),
# ROUNDS (warm-hit rounds per connection count, default 21), WARM_CONNECTIONS
# (default "16 64 256"), STEER (rfs: receive flow steering on lo, needs
# root; default off), DURATION (seconds per wrk run, default 4),
# PAGE_CACHE (dropped: after the warm-up downloads, empty the page cache so
# that each server reads its files back from disk, as a node whose cache is
# larger than its memory does; needs root; default kept),
# MEMORY_SECONDS (how long the 256 downloads run; 0 = until they finish,
# default 120), SERVERS (for herd, deep and memory: default "nginx
# lastmile"), RESULTS (default $BENCH_DIR/results.md).
source "$(dirname "$0")/lib.sh"

# Many short rounds: on a shared host the machine's speed drifts within
# seconds, and only a ratio taken within one round cancels that out.
ROUNDS="${ROUNDS:-21}"
WARM_CONNECTIONS="${WARM_CONNECTIONS:-16 64 256}"
SERVERS="${SERVERS:-nginx lastmile}"
DURATION="${DURATION:-4}"
MEMORY_SECONDS="${MEMORY_SECONDS:-120}"
RESULTS="${RESULTS:-$BENCH_DIR/results.md}"
SLICE=1048576

need nginx wrk curl openssl taskset
mkdir -p "$BENCH_DIR"
build
make_content
trap 'stop_all; restore_receive_steering' EXIT
stop_all
# STEER=rfs receives on the reader's core, as between two hosts; the
# default, off, leaves lo as it is (see steer_receive_to_readers in lib.sh).
STEER="${STEER:-off}"
STEER_NOTE="off (each segment received on the sender's core)"
if [ "$STEER" = rfs ]; then
  steer_receive_to_readers || { echo "cannot set receive flow steering on lo (needs root); STEER=off to run without" >&2; exit 1; }
  STEER_NOTE="receive flow steering (each side receives on its own core)"
fi

# One measure of one server at one connection count, from the warm table,
# as "round value" lines. The one place that knows the table's columns.
warm_measure() {
  local table="$1" conns="$2" server="$3" measure="$4"
  awk -F'\t' -v c="$conns" -v s="$server" -v m="$measure" '
    $1 == c && $2 == s {
      if (m == "rps") v = $3; else if (m == "p99") v = $4; else if (m == "cpu") v = $5 / $6
      else if (m == "machine") v = $7 / $6; else if (m == "core") v = $8 / $6
      else { print "unknown measure " m > "/dev/stderr"; exit 1 }
      print $9, v
    }' "$table"
}

# A measure's median over the rounds, each server on its own.
warm_median() { warm_measure "$@" | cut -d' ' -f2 | median; }

# A measure's lastmile/nginx ratio in each round, summed up as
# "median [lowest, highest]".
paired_ratios() {
  local table="$1" conns="$2" measure="$3"
  LC_ALL=C join <(warm_measure "$table" "$conns" nginx "$measure" | LC_ALL=C sort -k1,1) \
    <(warm_measure "$table" "$conns" lastmile "$measure" | LC_ALL=C sort -k1,1) |
    awk '$2 > 0 { print $3 / $2 }' | spread |
    awk 'NF == 3 { printf "%.2f [%.2f, %.2f]\n", $1, $2, $3; shown = 1 } END { if (!shown) print "-" }'
}

# How the page cache holds a cache's files (needs root and python3).
folio_layout() {
  if [ "$(id -u)" != 0 ] || ! command -v python3 >/dev/null; then
    echo "not read (needs root and python3)"
    return
  fi
  find "$1" -type f -print0 | xargs -0 python3 "$HERE/folios.py"
}

# "median lowest highest" of numbers, one per line (nothing for none).
spread() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit
  print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }
median() { spread | cut -d' ' -f1; }
percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; print v[i] }'; }
ms() { awk '{ v = $1; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f\n", a / b }'; }

start_servers() {
  stop_all
  start_origin
  start_peer
  start_lastmile
}

{
  echo "## Results $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "nginx $(nginx -v 2>&1 | cut -d/ -f2), wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}'), lastmile-cache $(git -C "$ROOT" rev-parse --short HEAD)."
  echo
} > "$RESULTS"

warm() {
  log "warm hits: random 1 MiB ranges of the 64 MiB object"
  start_servers
  for server in nginx lastmile; do
    verify_file "$server" 64m.bin   # also fills the cache
  done
  if [ "${PAGE_CACHE:-kept}" = dropped ]; then
    sync
    echo 1 > /proc/sys/vm/drop_caches || { echo "PAGE_CACHE=dropped needs root" >&2; exit 1; }
  fi
  local table="$BENCH_DIR/warm.tsv"
  : > "$table"
  for conns in $WARM_CONNECTIONS; do
    for round in $(seq 1 "$ROUNDS"); do
      # Alternate who goes first, so drifting background load hits both.
      local order="nginx lastmile"
      [ $((round % 2)) -eq 0 ] && order="lastmile nginx"
      for server in $order; do
        local pid cpu0 cpu1 core0 core1 all0 all1 out rps p99 gb
        pid="$(server_pid "$server")"
        cpu0="$(cpu_seconds "$pid")"
        core0="$(core_cpu_seconds "$SERVER_CPU")"
        all0="$(machine_cpu_seconds)"
        out="$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency \
          -s "$HERE/ranges.lua" -H "$(host_header_of "$server")" "$(url_of "$server" 64m.bin)" 2>&1)"
        cpu1="$(cpu_seconds "$pid")"
        core1="$(core_cpu_seconds "$SERVER_CPU")"
        all1="$(machine_cpu_seconds)"
        if echo "$out" | grep -q "unexpected status\|Non-2xx"; then
          echo "$out" >&2
          echo "$server answered something other than 206" >&2
          exit 1
        fi
        rps="$(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
        p99="$(echo "$out" | awk '$1 == "99%" { print $2 }' | ms)"
        gb="$(echo "$out" | awk '/read$/ { v = $(NF-1); if (v ~ /GB$/) v = v + 0; else if (v ~ /MB$/) v = v / 1024; print v }')"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$server" "$rps" "$p99" "$(echo "$cpu1 - $cpu0" | bc)" "$gb" \
          "$(echo "$all1 - $all0" | bc)" "$(echo "$core1 - $core0" | bc)" "$round" >> "$table"
        log "  $conns connections, $server: $rps req/s, p99 ${p99} ms"
      done
    done
  done
  {
    echo "### 1. Warm hits, random 1 MiB ranges of a 64 MiB object"
    echo
    echo "\`taskset -c 1 wrk -t1 -c<N> -d${DURATION}s --latency -s bench/cache/ranges.lua\`, ${ROUNDS} alternating rounds, medians."
    echo
    echo "Page cache before the runs: ${PAGE_CACHE:-kept} (kept: as each server wrote its files; dropped: read back from disk by each server)."
    echo "Receive steering on lo: $STEER_NOTE. CPU s/GB: the server process (/proc/<pid>/stat), the server's core"
    echo "(CPU $SERVER_CPU, /proc/stat, nothing else runs there) and the whole machine (server, wrk, origin, kernel)."
    echo
    echo "| connections | nginx req/s | lastmile req/s | ratio | nginx p99 ms | lastmile p99 ms | process CPU s/GB, nginx | lastmile | ratio | server core CPU s/GB, nginx | lastmile | ratio | machine CPU s/GB, nginx | lastmile | ratio |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for conns in $WARM_CONNECTIONS; do
      local n_rps l_rps n_p99 l_p99 n_cpu l_cpu n_all l_all n_core l_core
      n_rps="$(warm_median "$table" "$conns" nginx rps)"
      l_rps="$(warm_median "$table" "$conns" lastmile rps)"
      n_p99="$(warm_median "$table" "$conns" nginx p99)"
      l_p99="$(warm_median "$table" "$conns" lastmile p99)"
      n_cpu="$(warm_median "$table" "$conns" nginx cpu)"
      l_cpu="$(warm_median "$table" "$conns" lastmile cpu)"
      n_all="$(warm_median "$table" "$conns" nginx machine)"
      l_all="$(warm_median "$table" "$conns" lastmile machine)"
      n_core="$(warm_median "$table" "$conns" nginx core)"
      l_core="$(warm_median "$table" "$conns" lastmile core)"
      printf '| %s | %.0f | %.0f | %s | %.1f | %.1f | %.3f | %.3f | %s | %.3f | %.3f | %s | %.3f | %.3f | %s |\n' "$conns" "$n_rps" "$l_rps" \
        "$(ratio "$l_rps" "$n_rps")" "$n_p99" "$l_p99" "$n_cpu" "$l_cpu" "$(ratio "$l_cpu" "$n_cpu")" \
        "$n_core" "$l_core" "$(ratio "$l_core" "$n_core")" "$n_all" "$l_all" "$(ratio "$l_all" "$n_all")"
    done
    echo
    echo "Paired: lastmile's figure over nginx's in the same round, median [lowest, highest] over the ${ROUNDS} rounds."
    echo "For p99 and CPU per GB, below 1 is better."
    echo
    echo "| connections | req/s | p99 latency | process CPU/GB | server core CPU/GB | machine CPU/GB |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for conns in $WARM_CONNECTIONS; do
      printf '| %s |' "$conns"
      for metric in rps p99 cpu core machine; do
        printf ' %s |' "$(paired_ratios "$table" "$conns" "$metric")"
      done
      echo
    done
    echo
    echo "Page cache after the runs (bench/cache/folios.py: sendfile hands the socket each folio's pages"
    echo "as separate pieces, so fewer, larger folios cost less per byte):"
    echo
    echo "- nginx: $(folio_layout "$BENCH_DIR/nginx-cache")"
    echo "- lastmile: $(folio_layout "$BENCH_DIR/lastmile-cache")"
    echo
    echo "Raw runs (connections, server, req/s, p99 ms, server process CPU s, GB, machine CPU s, server core CPU s, round):"
    echo
    echo '```'
    cat "$table"
    echo '```'
    echo
  } >> "$RESULTS"
}

herd() {
  log "thundering herd: 100 clients at once for the cold 64 MiB object"
  {
    echo "### 2. Thundering herd: 100 clients at once, cold 64 MiB object"
    echo
    echo "One \`curl --parallel --parallel-immediate --parallel-max 100\` process with 100 transfers to /dev/null"
    echo "(TTFB = curl's time_starttransfer); sizes checked per transfer, then the cached object's SHA-256 through"
    echo "the server; origin bytes from the origin's access log."
    echo
    echo "| server | TTFB p50 ms | TTFB p99 ms | TTFB max ms | full-size bodies | cached copy correct | origin bytes / object | server CPU s/GB |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  } >> "$RESULTS"
  for server in $SERVERS; do
    start_servers
    local out="$BENCH_DIR/herd-$server.txt" config="$BENCH_DIR/herd-$server.curl"
    : > "$config"
    for _ in $(seq 1 100); do
      printf 'url = "%s"\noutput = "/dev/null"\n' "$(url_of "$server" 64m.bin)" >> "$config"
    done
    local pid cpu0 cpu1
    pid="$(server_pid "$server")"
    cpu0="$(cpu_seconds "$pid")"
    taskset -c "$CLIENT_CPU" curl -s --parallel --parallel-immediate --parallel-max 100 \
      -H "$(host_header_of "$server")" -K "$config" \
      -w '%{time_starttransfer} %{size_download} %{http_code}\n' > "$out" || true
    cpu1="$(cpu_seconds "$pid")"
    local p50 p99 max full correct=no obytes
    p50="$(awk '{ print $1 * 1000 }' "$out" | percentile 50)"
    p99="$(awk '{ print $1 * 1000 }' "$out" | percentile 99)"
    max="$(awk '{ print $1 * 1000 }' "$out" | sort -g | tail -1)"
    full="$(awk '$2 == 67108864 && $3 == 200' "$out" | wc -l)"
    obytes="$(origin_bytes "$server" 64m.bin)"
    verify_file "$server" 64m.bin && correct=yes
    printf '| %s | %.1f | %.1f | %.1f | %s/100 | %s | %s | %.3f |\n' "$server" "$p50" "$p99" "$max" "$full" "$correct" \
      "$(awk -v b="$obytes" 'BEGIN { printf "%.4f", b / 67108864 }')" \
      "$(echo "($cpu1 - $cpu0) / 6.4" | bc -l)" >> "$RESULTS"
    log "  $server: TTFB p50 $p50 ms, p99 $p99 ms, $full/100 full, origin bytes $obytes"
  done
  echo >> "$RESULTS"
}

deep() {
  log "cold ranges 3.5 GiB into the 4 GiB object"
  {
    echo "### 3. Cold 1 MiB range 3.5 GiB into the 4 GiB object"
    echo
    echo "Empty caches; one \`curl -r\`; origin bytes from the origin's access log (slice = 1 MiB)."
    echo
    echo "| range | server | bytes correct | origin bytes | slices |"
    echo "| --- | --- | --- | --- | --- |"
  } >> "$RESULTS"
  local base=$((3584 * 1048576))
  for offset in 0 524288; do
    local first=$((base + offset)) last=$((base + offset + 1048575))
    for server in $SERVERS; do
      start_servers
      local got want correct obytes
      got="$(curl -s -r "$first-$last" -H "$(host_header_of "$server")" "$(url_of "$server" 4g.bin)" | sha256sum | cut -d' ' -f1)"
      want="$(dd if="$BENCH_DIR/origin/4g.bin" iflag=skip_bytes,count_bytes skip="$first" count=1048576 status=none | sha256sum | cut -d' ' -f1)"
      correct=no; [ "$got" = "$want" ] && correct=yes
      obytes="$(origin_bytes "$server" 4g.bin)"
      printf '| bytes=%s-%s | %s | %s | %s | %s |\n' "$first" "$last" "$server" "$correct" "$obytes" \
        "$(awk -v b="$obytes" 'BEGIN { printf "%.2f", b / 1048576 }')" >> "$RESULTS"
      log "  $first-$last $server: origin bytes $obytes, correct: $correct"
    done
  done
  echo >> "$RESULTS"
}

memory() {
  log "256 concurrent full downloads of the 4 GiB object (cold cache)"
  {
    echo "### 4. 256 concurrent full downloads of the 4 GiB object, cold cache"
    echo
    if [ "$MEMORY_SECONDS" = 0 ]; then
      echo "256 \`curl\` processes, to completion; server RSS sampled every 0.5 s."
    else
      echo "256 \`curl\` processes for ${MEMORY_SECONDS} s (then stopped); server RSS sampled every 0.5 s."
    fi
    echo
    echo "| server | max RSS MiB | bytes served | origin bytes | server CPU s/GB |"
    echo "| --- | --- | --- | --- | --- |"
  } >> "$RESULTS"
  for server in $SERVERS; do
    start_servers
    local pid cpu0 cpu1 max=0 out="$BENCH_DIR/memory-$server"
    rm -rf "$out"; mkdir -p "$out"
    pid="$(server_pid "$server")"
    cpu0="$(cpu_seconds "$pid")"
    local limit=()
    [ "$MEMORY_SECONDS" != 0 ] && limit=(--max-time "$MEMORY_SECONDS")
    local clients=()
    for i in $(seq 1 256); do
      # curl prints the byte count also when --max-time stops it.
      taskset -c "$CLIENT_CPU" curl -s -o /dev/null "${limit[@]}" -H "$(host_header_of "$server")" \
        "$(url_of "$server" 4g.bin)" -w '%{size_download}\n' > "$out/$i" &
      clients+=($!)
    done
    while :; do
      local rss alive=0
      rss="$(rss_kib "$pid")"
      [ "$rss" -gt "$max" ] && max="$rss"
      for c in "${clients[@]}"; do kill -0 "$c" 2>/dev/null && alive=$((alive + 1)); done
      [ "$alive" -eq 0 ] && break
      sleep 0.5
    done
    wait "${clients[@]}" || true
    cpu1="$(cpu_seconds "$pid")"
    local served
    served="$(cat "$out"/* | awk '{ s += $1 } END { print s + 0 }')"
    printf '| %s | %.1f | %s | %s | %s |\n' "$server" "$(echo "$max / 1024" | bc -l)" "$served" \
      "$(origin_bytes "$server" 4g.bin)" \
      "$(awk -v c="$(echo "$cpu1 - $cpu0" | bc)" -v b="$served" 'BEGIN { if (b > 0) printf "%.3f", c / (b / 1e9); else print "-" }')" >> "$RESULTS"
    log "  $server: max RSS $max KiB"
  done
  echo >> "$RESULTS"
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(warm herd deep memory)
for step in "${steps[@]}"; do
  case "$step" in
    warm|herd|deep|memory) "$step" ;;
    *) echo "unknown step $step (warm, herd, deep, memory)" >&2; exit 2 ;;
  esac
done
stop_all
cat "$RESULTS"
