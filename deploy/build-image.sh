#!/usr/bin/env bash
# Builds the Kinesin container image from a kinesin binary built on this host.
#
#   deploy/build-image.sh [--binary PATH] [--tag TAG] [--base IMAGE] [--keep-debug]
#
#   --binary PATH   the kinesin binary to put in the image
#                   (default: $CARGO_TARGET_DIR/release/kinesin, i.e. what `make release` builds)
#   --tag TAG       image name (default: $KINESIN_IMAGE or kinesin:latest)
#   --base IMAGE    base image (default: $KINESIN_BASE_IMAGE, else the local offline base below)
#   --keep-debug    do not strip debug info from the copied binary (symbols are always kept)
#
# No image registry is needed. Unless a base image is named, the base is a minimal Debian
# bookworm root file system made with mmdebstrap from the Debian mirror and `docker import`ed as
# kinesin/base:bookworm (once per machine; reused while it exists). mmdebstrap is installed with
# apt when missing. Where mmdebstrap is not available (not Debian/Ubuntu), or with
# `--base debian:bookworm-slim`, Docker pulls the base from Docker Hub instead.
#
# The binary runs in the image unchanged, so it must be built against a glibc no newer than
# bookworm's (2.36): build it on Debian bookworm (or older), or in a bookworm container.
set -euo pipefail
cd "$(dirname "$0")/.."

OFFLINE_BASE="kinesin/base:bookworm"
ONLINE_BASE="debian:bookworm-slim"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/kinesin-target}"
binary="$target_dir/release/kinesin"
tag="${KINESIN_IMAGE:-kinesin:latest}"
base="${KINESIN_BASE_IMAGE:-}"
strip_debug=1

while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --base) base="$2"; shift 2 ;;
    --keep-debug) strip_debug=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build-image: $*" >&2; exit 1; }

[[ -f "$binary" && -x "$binary" ]] || die "no kinesin binary at $binary (run \`make release\`, or pass --binary)"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine (is it running, may this user use it?)"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# The offline base: Debian bookworm minbase plus what the image and fault-injection tests use.
build_offline_base() {
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "build-image: installing mmdebstrap (Debian package) to make the base image"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >/dev/null
  fi
  echo "build-image: making $OFFLINE_BASE with mmdebstrap (Debian bookworm minbase, about 15 s)"
  # Target "-" writes the root file system as a tar stream to stdout, straight into docker import.
  # stdin is /dev/null so mmdebstrap never reads a sources.list from it.
  $SUDO mmdebstrap --quiet --variant=minbase \
      --include=ca-certificates,iproute2,iptables,curl \
      bookworm - ${KINESIN_DEBIAN_MIRROR:+"$KINESIN_DEBIAN_MIRROR"} </dev/null \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --message "Debian bookworm minbase made by deploy/build-image.sh" \
        - "$OFFLINE_BASE" >/dev/null
}

if [[ -z "$base" ]]; then
  if docker image inspect "$OFFLINE_BASE" >/dev/null 2>&1; then
    base="$OFFLINE_BASE"
  elif build_offline_base; then
    base="$OFFLINE_BASE"
  else
    echo "build-image: mmdebstrap is not available here; using $ONLINE_BASE from Docker Hub" >&2
    base="$ONLINE_BASE"
  fi
fi

# The build context holds only the binary (deploy/.build is gitignored). One directory per build,
# so concurrent builds (several test runs) do not overwrite each other's binary.
mkdir -p deploy/.build
context="$(mktemp -d deploy/.build/context.XXXXXX)"
trap 'rm -rf "$context"' EXIT
if ((strip_debug)) && command -v objcopy >/dev/null 2>&1; then
  # Debug info makes a debug build's binary several times larger; symbols stay for backtraces.
  objcopy --strip-debug "$binary" "$context/kinesin"
else
  cp "$binary" "$context/kinesin"
fi
chmod 0755 "$context/kinesin"

echo "build-image: building $tag from $binary on $base"
docker build --quiet --build-arg BASE_IMAGE="$base" -f deploy/Dockerfile -t "$tag" "$context" >/dev/null

# Catch a binary that cannot run in the image (e.g. built against a newer glibc) now, not at `up`.
if ! out=$(docker run --rm --entrypoint /usr/local/bin/kinesin "$tag" --version 2>&1); then
  die "the image's binary does not run in $base: $out"
fi
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "build-image: $tag ready ($out, $((size / 1000000)) MB)"
