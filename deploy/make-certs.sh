#!/usr/bin/env bash
# Makes a private certificate authority and one TLS certificate per node, for --tls-listen.
#
#   deploy/make-certs.sh [--dir DIR] [--days N] [--force] [NODE...]
#
#   NODE...     host names to make certificates for (default: node1 node2 node3, the compose
#               cluster's). Each certificate's names (SANs): NODE, localhost, 127.0.0.1, plus
#               $KINESIN_EXTRA_SANS (e.g. "DNS:kinesis.example.com,IP:10.0.0.5").
#   --dir DIR   where to write them (default: $KINESIN_CERTS_DIR, else deploy/certs)
#   --days N    validity of the node certificates (default 825; the CA: 3650)
#   --force     make everything anew, the CA too (clients must then trust the new ca.pem)
#
# Writes DIR/ca.pem (give it to clients: aws --ca-bundle, boto3 verify=, Fluent Bit's
# tls.ca_file), DIR/capath/ (the same CA as a hashed directory, for the KPL's CaCertPath),
# DIR/ca-key.pem (keep it private: it signs the node certificates),
# and DIR/NODE/cert.pem + DIR/NODE/key.pem (--tls-cert and --tls-key of that node). An existing CA
# is kept and only missing node certificates are made, so clients keep trusting the same CA.
# Keys are EC P-256 in PKCS#8. Run as root, node keys are given to the image's server user (uid
# $KINESIN_CERT_OWNER, default 10001) with mode 0600; otherwise they are made readable by all
# (0644), so that the container can read them: fine on a development machine only.
# Needs the openssl command (installed with apt-get when missing); no network otherwise.
# $KINESIN_CERT_USAGE: the node certificates' extended key usages (default serverAuth;
# deploy/gen-cluster-certs.sh asks for serverAuth,clientAuth), $KINESIN_CA_NAME: a new CA's name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

dir="${KINESIN_CERTS_DIR:-$here/certs}"
days=825
force=0
nodes=()
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-certs: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) nodes+=("$1"); shift ;;
  esac
done
((${#nodes[@]})) || nodes=(node1 node2 node3)
owner="${KINESIN_CERT_OWNER:-10001}"

die() { echo "make-certs: $*" >&2; exit 1; }

if ! command -v openssl >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "the openssl command is needed; install it"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "make-certs: installing openssl (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# In the same file system as the results, so that moving a file into place is an atomic rename.
tmp="$(mktemp -d "$dir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

new_key() { (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null); }

if ((force)) || [[ ! -f "$dir/ca.pem" || ! -f "$dir/ca-key.pem" ]]; then
  new_key "$dir/ca-key.pem"
  openssl req -x509 -new -key "$dir/ca-key.pem" -sha256 -days 3650 \
    -subj "/CN=${KINESIN_CA_NAME:-Kinesin private CA} $(date -u +%Y-%m-%d)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem"
  chmod 0644 "$dir/ca.pem"
  force=1  # certificates of an old CA are no use
  # The CA as an OpenSSL CApath directory (hashed names), what the KPL's CaCertPath wants.
  rm -rf "$dir/capath"
  mkdir -p "$dir/capath"
  cp "$dir/ca.pem" "$dir/capath/kinesin-ca.pem"
  openssl rehash "$dir/capath" >/dev/null
  echo "make-certs: made the CA $dir/ca.pem"
fi

for node in "${nodes[@]}"; do
  out="$dir/$node"
  if ((!force)) && [[ -f "$out/cert.pem" && -f "$out/key.pem" ]]; then
    echo "make-certs: keeping $out/cert.pem"
    continue
  fi
  mkdir -p "$out"
  chmod 0755 "$out"
  new_key "$tmp/key.pem"
  cat > "$tmp/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=${KINESIN_CERT_USAGE:-serverAuth}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
subjectAltName=DNS:$node,DNS:localhost,IP:127.0.0.1${KINESIN_EXTRA_SANS:+,$KINESIN_EXTRA_SANS}
EXT
  openssl req -new -key "$tmp/key.pem" -subj "/CN=$node" -out "$tmp/req.csr"
  openssl x509 -req -in "$tmp/req.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>/dev/null
  if [[ $(id -u) -eq 0 ]]; then
    chown "$owner:$owner" "$tmp/key.pem"
    chmod 0600 "$tmp/key.pem"
  else
    chmod 0644 "$tmp/key.pem"
  fi
  chmod 0644 "$tmp/cert.pem"
  # Renamed into place, key first: a node watching the files sees each one appear whole.
  mv -f "$tmp/key.pem" "$out/key.pem"
  mv -f "$tmp/cert.pem" "$out/cert.pem"
  echo "make-certs: made $out/cert.pem (names: $node, localhost, 127.0.0.1${KINESIN_EXTRA_SANS:+, $KINESIN_EXTRA_SANS})"
done
