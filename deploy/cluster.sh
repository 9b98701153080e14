#!/usr/bin/env bash
# Runs the three-node cluster of deploy/docker-compose.yml.
#
#   deploy/cluster.sh up              start it (image must exist: `make docker-image`), wait until
#                                     every node is healthy, print the endpoints; makes the TLS
#                                     certificates first (deploy/make-certs.sh) when missing;
#                                     with KINESIN_CLUSTER_TLS=1, mutual TLS between the nodes
#                                     (docker-compose.cluster-tls.yml; certificates made by
#                                     deploy/gen-cluster-certs.sh when missing)
#   deploy/cluster.sh down [-v|--volumes]   stop and remove the containers (with -v: the data too)
#   deploy/cluster.sh ps | logs [ARGS] | compose ARGS...   passed to docker compose
#
# Environment: KINESIN_COMPOSE_PROJECT (compose project name, default "kinesin"), KINESIN_UP_TIMEOUT
# (seconds `up` waits for health, default 120), and the variables docker-compose.yml documents
# (KINESIN_IMAGE, KINESIN_NODE{1,2,3}_PORT, KINESIN_NODE{1,2,3}_TLS_PORT, KINESIN_PUBLISH_ADDR,
# KINESIN_CERTS_DIR, KINESIN_CLUSTER_CERTS_DIR, ...).
# Uses `docker compose` when the plugin is installed, otherwise `docker-compose`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

project="${KINESIN_COMPOSE_PROJECT:-kinesin}"
image="${KINESIN_IMAGE:-kinesin:latest}"
timeout="${KINESIN_UP_TIMEOUT:-120}"
nodes=(node1 node2 node3)
# Absolute, so that it means the same to this script and to compose (which resolves relative
# paths against the compose file's directory).
certs_dir="${KINESIN_CERTS_DIR:-$here/certs}"
mkdir -p "$certs_dir"
export KINESIN_CERTS_DIR="$(cd "$certs_dir" && pwd)"
compose_files=(-f "$here/docker-compose.yml")
if [[ "${KINESIN_CLUSTER_TLS:-0}" == 1 ]]; then
  cluster_certs_dir="${KINESIN_CLUSTER_CERTS_DIR:-$here/cluster-certs}"
  mkdir -p "$cluster_certs_dir"
  export KINESIN_CLUSTER_CERTS_DIR="$(cd "$cluster_certs_dir" && pwd)"
  compose_files+=(-f "$here/docker-compose.cluster-tls.yml")
fi

die() { echo "cluster: $*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  die "neither \`docker compose\` nor \`docker-compose\` is installed"
fi
compose() { "${compose_cmd[@]}" -p "$project" "${compose_files[@]}" "$@"; }

container_of() { compose ps -q "$1"; }

wait_healthy() {
  local deadline=$((SECONDS + timeout)) pending id status
  while :; do
    pending=()
    for n in "${nodes[@]}"; do
      id=$(container_of "$n")
      [[ -n "$id" ]] || die "no container for $n"
      status=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
      case "$status" in
        "running healthy") ;;
        running*) pending+=("$n") ;;
        *) compose logs --tail 40 "$n" >&2 || true
           die "$n is not running ($status); its last log lines are above" ;;
      esac
    done
    ((${#pending[@]})) || return 0
    if ((SECONDS >= deadline)); then
      for n in "${pending[@]}"; do compose logs --tail 40 "$n" >&2 || true; done
      die "not healthy after ${timeout}s: ${pending[*]} (last log lines above)"
    fi
    sleep 1
  done
}

# endpoint_of NODE [PORT SCHEME]: the host URL of a node's container port.
endpoint_of() {
  local hostport
  hostport=$(compose port "$1" "${2:-4567}")
  hostport="${hostport/0.0.0.0/127.0.0.1}"
  echo "${3:-http}://$hostport"
}
tls_endpoint_of() { endpoint_of "$1" 4443 https; }

# certs_for_missing SCRIPT DIR FILE...: runs deploy/SCRIPT for the nodes lacking one of the
# FILEs in DIR/NODE/.
certs_for_missing() {
  local script="$1" dir="$2" n file missing=()
  shift 2
  for n in "${nodes[@]}"; do
    for file in "$@"; do
      [[ -f "$dir/$n/$file" ]] || { missing+=("$n"); break; }
    done
  done
  if ((${#missing[@]})); then
    "$here/$script" --dir "$dir" "${missing[@]}"
  fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up)
    docker image inspect "$image" >/dev/null 2>&1 \
      || die "image $image does not exist: build it with \`make docker-image\` (or deploy/build-image.sh)"
    certs_for_missing make-certs.sh "$KINESIN_CERTS_DIR" cert.pem key.pem
    if [[ "${KINESIN_CLUSTER_TLS:-0}" == 1 ]]; then
      certs_for_missing gen-cluster-certs.sh "$KINESIN_CLUSTER_CERTS_DIR" cert.pem key.pem ca.pem
    fi
    compose up -d "$@"
    echo "cluster: waiting for the nodes to become healthy (a controller leader must be elected)"
    wait_healthy
    first=$(endpoint_of node1)
    echo
    echo "Kinesin cluster \"$project\" is up (image $image). Kinesis API endpoints:"
    for n in "${nodes[@]}"; do echo "  $n  $(endpoint_of "$n")  $(tls_endpoint_of "$n")"; done
    cat <<EOF

Every node serves every request. With the AWS CLI (credentials can be anything):
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1
  aws kinesis create-stream --stream-name demo --shard-count 3 --endpoint-url $first
  aws kinesis put-record --stream-name demo --partition-key user-1 --data aGVsbG8= --endpoint-url $first
  aws kinesis describe-stream-summary --stream-name demo --endpoint-url $(endpoint_of node2)
Over TLS, trusting the cluster's private CA:
  aws kinesis list-streams --endpoint-url $(tls_endpoint_of node1) --ca-bundle $KINESIN_CERTS_DIR/ca.pem
Cluster view: curl $first/admin/v1/cluster
Stop: make docker-down (keeps the data), make docker-down ARGS=--volumes (deletes it)
EOF
    ;;
  down)
    args=()
    for a in "$@"; do
      case "$a" in
        -v|--volumes) args+=(--volumes) ;;
        *) die "down: unknown argument $a" ;;
      esac
    done
    compose down --remove-orphans "${args[@]}"
    ;;
  ps|logs) compose "$cmd" "$@" ;;
  compose) compose "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
