#!/usr/bin/env bash
# Makes the secrets of the compose cluster, offline (/dev/urandom and coreutils only): the
# credentials file (--credentials, authentication on) with one admin principal with random keys,
# and the keyring (--keyring, encryption at rest) with one master key aliased alias/aws/kinesis.
#
#   deploy/gen-secrets.sh [--dir DIR] [--new-credentials] [--new-key ALIAS]
#
#   --dir DIR           where to write them (default: $KINESIN_SECRETS_DIR, else deploy/secrets)
#   --new-credentials   write a new credentials file (a new admin, new keys) over the old one: the
#                       old keys stop working within a second; principals you added are dropped
#   --new-key ALIAS     add a new master key named ALIAS (alias/NAME) to the keyring
#
# Only missing files are made: `deploy/cluster.sh up` runs it every time. It writes
#   DIR/nodes/credentials.toml  one [[user]] "admin" (account 000000000000, admin = true, a policy
#                               allowing kinesis:*), access key id AKIA + 16 characters and a
#                               40-character secret; add principals to it as README
#                               "Authentication" shows
#   DIR/nodes/keyring.toml      one [[key]]: a random id, 32 random bytes of material, the alias
#                               alias/aws/kinesis (StartStreamEncryption's default KeyId). An
#                               existing keyring is never replaced: records sealed under its keys
#                               need them to be read
#   DIR/admin.env               the admin's keys as `export AWS_...` lines, for the AWS CLI,
#                               boto3 and `kinesin ctl`: `. DIR/admin.env`
#
# Permissions: DIR is 0700 (its owner, and root, only) and DIR/nodes/ 0755 with files 0644 inside.
# Every node mounts DIR/nodes (not DIR) read-only, and inside the container the server's
# unprivileged user (uid 10001, deploy/Dockerfile) reads them as "others" through the mount, which
# does not pass through DIR; on the host nobody else gets past DIR. This works whoever runs it
# (root or not, no chown, no uid or gid shared by the host and the image) and, by the same
# reasoning, with rootless Docker (the server's uid maps to a host uid that is "others" too).
# admin.env stays 0600 in DIR: no node needs it. Replace a file by renaming a new one over it
# (keeping it readable, 0644): the nodes re-read the credentials and the keyring within a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LC_ALL=C  # character ranges (A-Z) in their ASCII sense

die() { echo "gen-secrets: $*" >&2; exit 1; }

dir="${KINESIN_SECRETS_DIR:-$here/secrets}"
new_credentials=0
new_key_aliases=()
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --new-credentials) new_credentials=1; shift ;;
    --new-key)
      [[ ${2:-} =~ ^alias/[A-Za-z0-9/_-]+$ ]] || die "--new-key wants an alias like alias/orders"
      new_key_aliases+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 0700 "$dir"
mkdir -p "$dir/nodes"
chmod 0755 "$dir/nodes"
credentials="$dir/nodes/credentials.toml"
keyring="$dir/nodes/keyring.toml"

# random_chars N CLASS: N random characters of CLASS (a bracket class of letters and digits,
# such as A-Z0-9), taken from base64 of /dev/urandom (uniform: each base64 character is equally
# likely, so is each one kept).
random_chars() {
  local n="$1" class="$2" out="" chunk
  while ((${#out} < n)); do
    chunk="$(head -c 48 /dev/urandom | base64)"
    out+="${chunk//[^$class]/}"
  done
  printf '%s' "${out:0:n}"
}

# A version 4 UUID from /dev/urandom, for key ids.
random_uuid() {
  local h
  h="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  # Version 4 in the 13th digit, variant 10xx in the 17th.
  printf '%s-%s-4%s-%x%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" $((0x${h:16:1} & 3 | 8)) "${h:17:3}" "${h:20:12}"
}

key_material() { head -c 32 /dev/urandom | base64; }

# write_file PATH MODE: stdin into PATH, through a file renamed over it, so that a node re-reading
# PATH sees the old contents or the new ones, never half of them. Made unreadable first (umask
# 077), then given MODE.
write_file() {
  local path="$1" mode="$2" tmp
  tmp="$(umask 077 && mktemp "$(dirname "$path")/.tmp.XXXXXX")"
  if ! cat >"$tmp"; then rm -f "$tmp"; die "cannot write $path"; fi
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

if ((new_credentials)) || [[ ! -f "$credentials" ]]; then
  key_id="AKIA$(random_chars 16 'A-Z0-9')"
  secret="$(random_chars 40 'A-Za-z0-9')"
  # admin.env first: once credentials.toml names the new keys, admin.env holds them too.
  write_file "$dir/admin.env" 0600 <<EOF
# The admin principal of $credentials, made by deploy/gen-secrets.sh.
# For the AWS CLI, boto3 and \`kinesin ctl\`: . $dir/admin.env
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=us-east-1
EOF
  write_file "$credentials" 0644 <<EOF
# Who may sign requests to the cluster (README.md, "Authentication"), made by
# deploy/gen-secrets.sh. Re-read by the nodes within a second of a change; add a [[user]] table per
# principal. The admin may also use the admin API and \`kinesin ctl\`.
[[user]]
name = "admin"
account = "000000000000"
access_key_id = "$key_id"
secret_access_key = "$secret"
admin = true
policies = ['{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}']
EOF
  echo "gen-secrets: made $credentials (admin $key_id; its keys are in $dir/admin.env)"
fi

if [[ ! -f "$keyring" ]]; then
  write_file "$keyring" 0644 <<EOF
# Master keys for encryption at rest (README.md, "Encryption at rest"), made by
# deploy/gen-secrets.sh. Every node reads this same file. Never change or delete the material of a
# key that sealed records you still keep: they could not be read any more.
[[key]]
id = "$(random_uuid)"
material = "$(key_material)"
aliases = ["alias/aws/kinesis"]
EOF
  echo "gen-secrets: made $keyring (one key, alias/aws/kinesis)"
fi

for alias in ${new_key_aliases[@]+"${new_key_aliases[@]}"}; do
  if grep -qF "\"$alias\"" "$keyring"; then die "$alias is already in $keyring"; fi
  id="$(random_uuid)"
  { cat "$keyring"; printf '\n[[key]]\nid = "%s"\nmaterial = "%s"\naliases = ["%s"]\n' "$id" "$(key_material)" "$alias"; } \
    | write_file "$keyring" 0644
  echo "gen-secrets: added the key $id ($alias) to $keyring"
done
