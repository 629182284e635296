#!/bin/bash
# kaws-addons: apply kaws' objects (RBAC, cluster DNS) and the workers'
# bootstrap token Secret to the local kube-apiserver with the bootstrap
# certificate (O system:masters).
#
# Runs at every master boot from kaws-addons.service, after kaws-keys.service.
# /etc/kaws/addons/index lists "<file> <API path>" per object, in order.
# Server-side apply with force makes it idempotent, so every master may run it
# at any time. It never gives up: on a first boot etcd and the API can take
# minutes (DNS, quorum), and a bootstrap that stopped trying would leave nodes
# without their rights until someone noticed.
set -euo pipefail

cert_dir=${KAWS_CERT_DIR:-/etc/kaws}
key_dir=${KAWS_KEY_DIR:-/run/kaws}
addons_dir=${KAWS_ADDONS_DIR:-$cert_dir/addons}
api=${KAWS_API:-https://127.0.0.1:443}
retry_max=${KAWS_RETRY_MAX:-30}

api_curl() {
  curl -fsS --max-time 10 -o /dev/null \
    --cacert "$cert_dir/ca.pem" \
    --cert "$cert_dir/bootstrap.pem" --key "$key_dir/bootstrap-key.pem" "$@"
}

retry() { # what, command...
  local what=$1 pause=1
  shift
  until "$@"; do
    echo "kaws-addons: $what: not yet; trying again in ${pause}s" >&2
    sleep "$pause"
    pause=$((pause * 2 > retry_max ? retry_max : pause * 2))
  done
}

retry "kube-apiserver at $api ready" api_curl "$api/readyz"

# The bootstrap token (issue 12), decrypted into tmpfs: its Secret, sent on
# stdin so the token is in no argument list and no file but its own.
token_file=$key_dir/bootstrap-token-key.pem
token_secret() {
  local token id
  token=$(<"$token_file")
  id=${token%%.*}
  printf '{"apiVersion":"v1","kind":"Secret","type":"bootstrap.kubernetes.io/token",'
  printf '"metadata":{"name":"bootstrap-token-%s","namespace":"kube-system"},' "$id"
  printf '"stringData":{"token-id":"%s","token-secret":"%s",' "$id" "${token#*.}"
  printf '"usage-bootstrap-authentication":"true","description":"kaws: workers join with it"}}'
}
apply_token() {
  local id
  id=$(cut -d. -f1 <"$token_file")
  token_secret | api_curl -X PATCH \
    -H 'Content-Type: application/apply-patch+yaml' --data-binary @- \
    "$api/api/v1/namespaces/kube-system/secrets/bootstrap-token-$id?fieldManager=kaws&force=true"
}
if [ -e "$token_file" ]; then
  retry "apply the bootstrap token's Secret" apply_token
  echo "kaws-addons: applied the bootstrap token's Secret"
fi

while read -r file path; do
  retry "apply $path" api_curl -X PATCH \
    -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$addons_dir/$file" \
    "$api$path?fieldManager=kaws&force=true"
  echo "kaws-addons: applied $path"
done <"$addons_dir/index"
