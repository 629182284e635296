#!/usr/bin/env bash
# The kaws quickstart: the whole workflow against a local AWS emulator (the
# moto server on a loopback port), explained step by step. Nothing here
# reaches real AWS: every AWS call goes to AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing what is missing (moto, the aws CLI) and building kaws"
bash scripts/setup-tools.sh
cargo build --release --locked -q
export PATH="$src/target/release:$PATH"

work=$(mktemp -d)
moto_pid=
cleanup() { [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

step "Starting the local AWS emulator (moto) on a free loopback port"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=quickstart AWS_SECRET_ACCESS_KEY=quickstart
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export KUBECONFIG="$work/kubeconfig"

step "Creating a KMS key: whoever may use it is a primary administrator"
kms_key=$(aws kms create-key --description "kaws quickstart" --query KeyMetadata.KeyId --output text)
echo "KMS key: $kms_key"

step "kaws init: a new kaws repository (a git repository of settings, certificates and encrypted keys)"
cd "$work"
kaws init infra
cd infra
git init -q .

step "kaws cluster init: the cluster's settings and PKI, every private key sealed by KMS"
kaws cluster init demo --domain example.com --zone-id Z0QUICKSTART --kms-key "$kms_key" --ssh-key demo-key

step "openssl, an independent judge, verifies the chain"
(cd clusters/demo && openssl verify -CAfile ca.pem apiserver.pem node.pem etcd.pem etcd-client.pem)

step "In an emergency, the aws CLI alone recovers a key (here: checked against its certificate, never written to disk)"
(cd clusters/demo &&
  aws kms decrypt --ciphertext-blob fileb://apiserver-key.pem.encrypted \
    --encryption-context kaws:cluster=demo,kaws:file=apiserver-key.pem \
    --query Plaintext --output text | base64 -d | openssl pkey -pubout |
  cmp -s - <(openssl x509 -in apiserver.pem -noout -pubkey) && echo "apiserver-key.pem matches apiserver.pem")

step "kaws cluster reencrypt: the keys move to a new KMS key (not revocation: the keys stay the same)"
new_key=$(aws kms create-key --description "kaws quickstart, rotated" --query KeyMetadata.KeyId --output text)
kaws cluster reencrypt demo --new-key "$new_key"

printf '\nQuickstart finished: every step above ran against the local emulator.\n'
