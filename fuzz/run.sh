#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20) from its checked-in corpus;
# fails if any target finds a crash (the input lands in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Stable toolchain: cargo-fuzz (from crates.io, installed here if missing) with --sanitizer none,
# which needs no nightly flag (the crates fuzzed forbid unsafe code; a panic, an overflow or a
# debug assertion is what a target finds). New inputs the fuzzer finds go to
# $CARGO_TARGET_DIR/fuzz-corpus/<target>, not into the checked-in corpus.
set -euo pipefail

cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-20}"
shift || true
# Never the main workspace's target dir: instrumented builds must not mix with it.
export CARGO_TARGET_DIR="${KINESIN_FUZZ_TARGET_DIR:-$HOME/.cache/kinesin-fuzz-target}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(json_request cbor_request event_stream sigv4 shard_iterator values)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

FLAGS=(-O --debug-assertions --sanitizer none --features libfuzzer --target-dir "$CARGO_TARGET_DIR")
cargo fuzz build "${FLAGS[@]}"

failed=()
for target in "${TARGETS[@]}"; do
    work="$CARGO_TARGET_DIR/fuzz-corpus/$target"
    mkdir -p "$work" "artifacts/$target"
    echo "== $target: ${SECONDS_PER_TARGET}s"
    # The first corpus dir receives new inputs; the checked-in one is only read.
    if ! cargo fuzz run "${FLAGS[@]}" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | { grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)\|^"' || true; }; then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashes in ${failed[*]}: see fuzz/artifacts/<target>/" >&2
    exit 1
fi
echo "fuzz: ${TARGETS[*]}: no crash in ${SECONDS_PER_TARGET}s each"
