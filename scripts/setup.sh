#!/usr/bin/env bash
# Installs what building and testing Kinesin needs beyond the Rust toolchain, idempotently:
#   - libclang (RocksDB's Rust bindings are generated with it), from Debian's packages;
#   - FUSE 3 (fuse3, libfuse3-3) for jepsen/'s forgetting file system, from Debian's packages;
#   - promtool (Debian's prometheus package) to check deploy/prometheus/'s config and alert rules;
#   - Chromium and chromedriver (Debian's chromium, chromium-driver) for the web console's browser test;
#   - a Python venv with boto3, the AWS CLI and pytest for the client tests.
# Safe to run repeatedly; does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KINESIN_VENV:-$HOME/.cache/kinesin-venv}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

need_apt=()
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libclang\.so'; then
  need_apt+=(libclang-dev)
fi
if ! command -v faketime >/dev/null 2>&1; then
  need_apt+=(faketime)   # the retention test runs the server with a clock in the past
fi
# jepsen/'s forgetfs (a FUSE file system that forgets unsynced writes) mounts with libfuse3,
# loaded by mfusepy through ctypes, and unmounts a dead one with fusermount3.
if ! command -v fusermount3 >/dev/null 2>&1; then
  need_apt+=(fuse3)
fi
if ! ldconfig -p 2>/dev/null | grep 'libfuse3\.so' >/dev/null; then  # grep -q could SIGPIPE ldconfig
  need_apt+=(libfuse3-3)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
# tests/python/test_deploy_configs.py checks deploy/prometheus/ with promtool, which Debian ships in
# the prometheus package (the server comes with it; without recommends, so no node exporter).
need_promtool=0
if ! command -v promtool >/dev/null 2>&1; then
  need_promtool=1
fi
# tests/python/test_console.py drives the web console in headless Chromium through selenium.
need_chromium=()
if ! command -v chromium >/dev/null 2>&1; then
  need_chromium+=(chromium)
fi
if ! command -v chromedriver >/dev/null 2>&1; then
  need_chromium+=(chromium-driver)
fi
if ((${#need_apt[@]})) || ((need_promtool)) || ((${#need_chromium[@]})); then
  $SUDO apt-get update -qq
fi
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ((need_promtool)); then
  echo "setup: installing prometheus (Debian package) for promtool"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ((${#need_chromium[@]})); then
  echo "setup: installing ${need_chromium[*]} (Debian packages) for the web console's browser test"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_chromium[@]}" >/dev/null
fi

requirements=tests/python/requirements.txt
stamp="$VENV/.kinesin-requirements"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating the Python venv at $VENV"
  python3 -m venv "$VENV"
fi
if [[ ! -f "$stamp" ]] || ! cmp -s "$requirements" "$stamp"; then
  echo "setup: installing Python test dependencies into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
