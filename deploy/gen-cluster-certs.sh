#!/usr/bin/env bash
# Makes the cluster's CA and one certificate per node, for mutual TLS between nodes
# (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca). Offline: openssl only.
#
#   deploy/gen-cluster-certs.sh [--dir DIR] [--days N] [--force] [N | NODE...]
#
#   N           make node1 … nodeN (default: 3, the compose cluster's node1 node2 node3)
#   NODE...     or certificates for these host names. Each names (SANs) NODE, localhost and
#               127.0.0.1, plus $KINESIN_EXTRA_SANS (e.g. "DNS:node1.example.com,IP:10.0.0.5"):
#               a node's certificate must name the host of its cluster address as the other
#               nodes dial it (--peers, --cluster-advertise). It serves as both server and client
#               certificate (extended key usages serverAuth and clientAuth).
#   --dir DIR   where to write them (default: $KINESIN_CLUSTER_CERTS_DIR, else deploy/cluster-certs)
#   --days N    validity of the node certificates (default 825; the CA: 3650)
#   --force     make everything anew, the CA too (every node must then get its new certificate)
#
# Writes DIR/ca.pem (the CA: --cluster-tls-ca of every node), DIR/ca-key.pem (keep it private and
# off the nodes: whoever holds it can make a node of the cluster), and DIR/NODE/cert.pem,
# DIR/NODE/key.pem and DIR/NODE/ca.pem (a copy of the CA), the three files of that node. An
# existing CA is kept and only missing node certificates are made; a node's certificate is renewed
# by deleting its directory and running this again (nodes reload changed files, no restart).
#
# The cluster's CA is its own, not the API's (deploy/make-certs.sh): a certificate that clients
# trust for the Kinesis API must not let a machine into the cluster. This script runs make-certs.sh
# with that CA's directory and both key usages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

die() { echo "gen-cluster-certs: $*" >&2; exit 1; }

dir="${KINESIN_CLUSTER_CERTS_DIR:-$here/cluster-certs}"
options=()
nodes=()
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --days) options+=(--days "$2"); shift 2 ;;
    --force) options+=(--force); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) nodes+=("$1"); shift ;;
  esac
done
if ((${#nodes[@]} == 1)) && [[ ${nodes[0]} =~ ^[0-9]+$ ]]; then
  count=${nodes[0]}
  ((count > 0)) || die "the number of nodes must be positive"
  nodes=()
  for ((i = 1; i <= count; i++)); do nodes+=("node$i"); done
fi
((${#nodes[@]})) || nodes=(node1 node2 node3)

KINESIN_CERT_USAGE="serverAuth,clientAuth" KINESIN_CA_NAME="Kinesin cluster CA" \
  "$here/make-certs.sh" --dir "$dir" ${options[@]+"${options[@]}"} "${nodes[@]}"

# The CA beside each node's pair: one directory holds all a node needs (mounted as one).
for node in "${nodes[@]}"; do
  cp "$dir/ca.pem" "$dir/$node/ca.pem.new"
  chmod 0644 "$dir/$node/ca.pem.new"
  mv -f "$dir/$node/ca.pem.new" "$dir/$node/ca.pem"
done
echo "gen-cluster-certs: each node's --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca are $dir/NODE/{cert,key,ca}.pem"
