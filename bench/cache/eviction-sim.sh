#!/usr/bin/env bash
# Byte hit ratio of LRU against S3-FIFO (the cache's own eviction code) on a
# synthetic trace shaped like update traffic; the trace is described in
# node-agent/cache/examples/eviction_sim.rs. Deterministic: same numbers on
# every run.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p lastmile-cache --example eviction_sim
