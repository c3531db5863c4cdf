#!/bin/sh
# Builds the libFuzzer target with coverage instrumentation on stable Rust
# (the sanitizer-coverage flags below are stable codegen options; no
# nightly or cargo-fuzz needed) and runs it.
#
#   ./run.sh                      # run until stopped (Ctrl-C)
#   ./run.sh -max_total_time=600  # ten minutes
#   ./run.sh -jobs=2 -workers=2   # more cores
#
# Crashes land in artifacts/decode_message/; reproduce one with
#   ./target/<host triple>/release/decode_message artifacts/decode_message/crash-...
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/decode_message artifacts/decode_message
# The seeds come from the crate itself, built normally (uninstrumented).
cargo run --quiet --manifest-path ../Cargo.toml --example write_fuzz_seeds -- corpus/decode_message

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros,
# which must not be instrumented (they are not linked with libFuzzer).
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --target "$host" --bin decode_message
exec "$CARGO_TARGET_DIR/$host/release/decode_message" -artifact_prefix=artifacts/decode_message/ \
  -max_len=4097 "$@" corpus/decode_message
