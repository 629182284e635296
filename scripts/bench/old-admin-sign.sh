#!/usr/bin/env bash
# What `kaws admin sign` replaces, for benchmarking: `aws kms decrypt` of
# the CA key to a plaintext file on disk, then `openssl x509 -req` of the
# administrator's CSR with the CA's usages for an administrator (clientAuth
# only), then the plaintext key is deleted.
#
# usage: old-admin-sign.sh CLUSTER_DIR CLUSTER CSR OUT_CERT
#   CLUSTER_DIR holds ca.pem and ca-key.pem.encrypted (as kaws writes them)
# AWS_ENDPOINT_URL, credentials and region come from the environment.
set -euo pipefail

dir=$1
cluster=$2
csr=$3
out=$4

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

aws kms decrypt --ciphertext-blob "fileb://$dir/ca-key.pem.encrypted" \
  --encryption-context "kaws:cluster=$cluster,kaws:file=ca-key.pem" \
  --query Plaintext --output text | base64 -d >"$tmp/ca-key.pem"

# The old configuration was written for RSA keys (keyEncipherment).
ku=${ADMIN_KEY_USAGE:-critical,digitalSignature,keyEncipherment}
cat >"$tmp/ext.cnf" <<EOF
[admin]
basicConstraints = critical,CA:FALSE
keyUsage = $ku
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF

openssl x509 -req -in "$csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca-key.pem" \
  -days 365 -sha256 -extfile "$tmp/ext.cnf" -extensions admin -out "$out" 2>/dev/null

rm -f "$tmp/ca-key.pem"
