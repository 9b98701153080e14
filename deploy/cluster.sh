#!/usr/bin/env bash
# Runs the three-node cluster of deploy/docker-compose.yml, secured by default:
#   - authentication: every request must be signed (SigV4) by a principal of the credentials file
#     (docker-compose.secure.yml; deploy/gen-secrets.sh makes it with one admin with random keys);
#   - encryption at rest: the same keyring on every node, with a key aliased alias/aws/kinesis
#     (docker-compose.secure.yml; made by deploy/gen-secrets.sh);
#   - mutual TLS between the nodes on the cluster port (docker-compose.cluster-tls.yml; the
#     cluster's own CA and node certificates made by deploy/gen-cluster-certs.sh).
# KINESIN_INSECURE=1 runs the open cluster instead (docker-compose.yml alone): no credentials, no
# keyring file (a node makes one in its data volume on first use), a plain cluster port; for trying
# it out on this machine only. KINESIN_CLUSTER_TLS=0 or 1 overrides the cluster TLS part alone.
#
#   deploy/cluster.sh up              start it (image must exist: `make docker-image`), wait until
#                                     every node is healthy, print the endpoints and how to sign
#                                     requests; first makes what is missing: the API's TLS
#                                     certificates (deploy/make-certs.sh), the cluster's
#                                     (deploy/gen-cluster-certs.sh) and the secrets
#                                     (deploy/gen-secrets.sh). Existing files are kept.
#   deploy/cluster.sh down [-v|--volumes]   stop and remove the containers (with -v: the data too)
#   deploy/cluster.sh ps | logs [ARGS] | compose ARGS...   passed to docker compose
#
# Files (absolute or relative to the current directory; the nodes mount their subdirectories):
#   KINESIN_CERTS_DIR          the API's TLS certificates (default deploy/certs)
#   KINESIN_CLUSTER_CERTS_DIR  the cluster's CA and node certificates (default deploy/cluster-certs)
#   KINESIN_SECRETS_DIR        credentials.toml and keyring.toml in nodes/, the admin's keys in
#                              admin.env (default deploy/secrets)
# When secured, `up` makes these three directories 0700 (readable by their owner only): nodes
# mount their subdirectories, so the server in the container still reads the files (see
# deploy/gen-secrets.sh) while nobody else on the host can.
#
# Environment: KINESIN_COMPOSE_PROJECT (compose project name, default "kinesin"), KINESIN_UP_TIMEOUT
# (seconds `up` waits for health, default 120), and the variables docker-compose.yml documents
# (KINESIN_IMAGE, KINESIN_NODE{1,2,3}_PORT, KINESIN_NODE{1,2,3}_TLS_PORT, KINESIN_PUBLISH_ADDR, ...).
# Uses `docker compose` when the plugin is installed, otherwise `docker-compose`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

project="${KINESIN_COMPOSE_PROJECT:-kinesin}"
image="${KINESIN_IMAGE:-kinesin:latest}"
timeout="${KINESIN_UP_TIMEOUT:-120}"
nodes=(node1 node2 node3)
secure=1
if [[ "${KINESIN_INSECURE:-0}" == 1 ]]; then secure=0; fi
cluster_tls="${KINESIN_CLUSTER_TLS:-$secure}"

# absolute DIR: DIR made absolute, so that it means the same to this script and to compose (which
# resolves relative paths against the compose file's directory).
absolute() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
KINESIN_CERTS_DIR="$(absolute "${KINESIN_CERTS_DIR:-$here/certs}")"
export KINESIN_CERTS_DIR
compose_files=(-f "$here/docker-compose.yml")
if ((secure)); then
  KINESIN_SECRETS_DIR="$(absolute "${KINESIN_SECRETS_DIR:-$here/secrets}")"
  export KINESIN_SECRETS_DIR
  compose_files+=(-f "$here/docker-compose.secure.yml")
fi
if [[ "$cluster_tls" == 1 ]]; then
  KINESIN_CLUSTER_CERTS_DIR="$(absolute "${KINESIN_CLUSTER_CERTS_DIR:-$here/cluster-certs}")"
  export KINESIN_CLUSTER_CERTS_DIR
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

# how_to_sign: how to sign requests as the admin deploy/gen-secrets.sh made. The access key id is
# printed, the secret is not (this output may end up in a CI log): the line reads it from admin.env.
how_to_sign() {
  local admin_env="$KINESIN_SECRETS_DIR/admin.env" creds="$KINESIN_SECRETS_DIR/nodes/credentials.toml" key_id=""
  if [[ -f "$admin_env" ]]; then key_id=$(sed -n 's/^export AWS_ACCESS_KEY_ID=//p' "$admin_env"); fi
  echo "Authentication is on: requests must be signed by a principal of $creds."
  if [[ -n "$key_id" ]] && grep -qF "\"$key_id\"" "$creds"; then
    cat <<EOF
As its admin, made by deploy/gen-secrets.sh (the AWS CLI, boto3 and \`kinesin ctl\` read these):
  export AWS_ACCESS_KEY_ID=$key_id AWS_DEFAULT_REGION=us-east-1
  export AWS_SECRET_ACCESS_KEY="\$(sed -n 's/^export AWS_SECRET_ACCESS_KEY=//p' $admin_env)"
(or all three at once: . $admin_env)
EOF
  else
    cat <<EOF
Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the keys of one of them (with admin = true for
\`kinesin ctl\`): $admin_env does not hold a key of that file any more.
EOF
  fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up)
    docker image inspect "$image" >/dev/null 2>&1 \
      || die "image $image does not exist: build it with \`make docker-image\` (or deploy/build-image.sh)"
    certs_for_missing make-certs.sh "$KINESIN_CERTS_DIR" cert.pem key.pem
    if [[ "$cluster_tls" == 1 ]]; then
      certs_for_missing gen-cluster-certs.sh "$KINESIN_CLUSTER_CERTS_DIR" cert.pem key.pem ca.pem
    fi
    if ((secure)); then
      "$here/gen-secrets.sh" --dir "$KINESIN_SECRETS_DIR"
      # Nobody but their owner gets into these directories on the host; the nodes mount their
      # subdirectories and so still read the files (see deploy/gen-secrets.sh). The node keys
      # make-certs.sh writes as a user other than root are 0644: this is what keeps them private.
      private=("$KINESIN_CERTS_DIR" "$KINESIN_SECRETS_DIR")
      if [[ "$cluster_tls" == 1 ]]; then private+=("$KINESIN_CLUSTER_CERTS_DIR"); fi
      for d in "${private[@]}"; do
        chmod 0700 "$d" || echo "cluster: warning: $d could not be made private (mode 0700)" >&2
      done
    fi
    compose up -d "$@"
    echo "cluster: waiting for the nodes to become healthy (a controller leader must be elected)"
    wait_healthy
    first=$(endpoint_of node1)
    second=$(endpoint_of node2)
    cluster_view="curl $first/admin/v1/cluster"
    if ((secure)); then
      cluster_view="kinesin ctl cluster --endpoint $first (it signs with the variables above), or
  curl --aws-sigv4 aws:amz:us-east-1:kinesis --user \"\$AWS_ACCESS_KEY_ID:\$AWS_SECRET_ACCESS_KEY\" $first/admin/v1/cluster"
    fi
    echo
    echo "Kinesin cluster \"$project\" is up (image $image). Kinesis API endpoints:"
    for n in "${nodes[@]}"; do echo "  $n  $(endpoint_of "$n")  $(tls_endpoint_of "$n")"; done
    echo
    if ((secure)); then
      how_to_sign
      cat <<EOF
Every node serves every request. Encryption at rest uses the keyring
$KINESIN_SECRETS_DIR/nodes/keyring.toml (the same on every node):
  aws kinesis create-stream --stream-name demo --shard-count 3 --endpoint-url $first
  aws kinesis wait stream-exists --stream-name demo --endpoint-url $first
  aws kinesis start-stream-encryption --stream-name demo --encryption-type KMS --key-id alias/aws/kinesis --endpoint-url $first
  aws kinesis put-record --stream-name demo --partition-key user-1 --data aGVsbG8= --endpoint-url $first
  aws kinesis describe-stream-summary --stream-name demo --endpoint-url $second
EOF
    else
      cat <<EOF
WARNING: KINESIN_INSECURE=1: requests are NOT authenticated (anyone who reaches a port may read,
write and delete every stream and use the admin API), the cluster port is plain TCP unless
KINESIN_CLUSTER_TLS=1, and each node keeps its own keyring in its data volume.
Every node serves every request. With the AWS CLI (credentials can be anything):
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1
  aws kinesis create-stream --stream-name demo --shard-count 3 --endpoint-url $first
  aws kinesis put-record --stream-name demo --partition-key user-1 --data aGVsbG8= --endpoint-url $first
  aws kinesis describe-stream-summary --stream-name demo --endpoint-url $second
EOF
    fi
    cat <<EOF
Over TLS, trusting the cluster's private CA:
  aws kinesis list-streams --endpoint-url $(tls_endpoint_of node1) --ca-bundle $KINESIN_CERTS_DIR/ca.pem
Cluster view: $cluster_view
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
