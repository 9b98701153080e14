#!/usr/bin/env bash
# Builds the `kinesin` binary of an earlier commit — the "previous release" that
# tests/python/test_upgrade.py upgrades from — and prints its path. Built once per commit and
# machine, cached under $CARGO_TARGET_DIR/previous-release/.
#
# It builds in a target directory of its own (building another checkout in the shared one would
# replace target/debug/kinesin and unify features differently), linking the RocksDB library the
# current build already compiled (ROCKSDB_LIB_DIR: the same librocksdb-sys version) instead of
# compiling RocksDB's C++ a second time.
set -euo pipefail
commit="${1:?usage: $0 COMMIT}"
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/kinesin-target}"
out="$target/previous-release/kinesin-$commit"
if [[ -x "$out" ]]; then
  echo "$out"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "commit $commit is not in this clone (shallow? run: git fetch --unshallow)" >&2
  exit 1
fi
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git archive "$commit" | tar -x -C "$src"
rocksdb="$(ls -t "$target"/debug/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)"
if [[ -n "$rocksdb" ]]; then
  export ROCKSDB_LIB_DIR="$(dirname "$rocksdb")" ROCKSDB_STATIC=1
fi
echo "building kinesin at $commit (once per machine; a few minutes)" >&2
(cd "$src" && CARGO_TARGET_DIR="$target/previous-release/target" cargo build --locked -p kinesin-node --bin kinesin >&2)
mkdir -p "$(dirname "$out")"
cp "$target/previous-release/target/debug/kinesin" "$out.partial"
mv "$out.partial" "$out"
echo "$out"
