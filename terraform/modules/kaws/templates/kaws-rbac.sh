#!/bin/bash
# kaws-rbac: apply kaws' RBAC objects (/etc/kaws/rbac/NN_<resource>_<name>.json)
# to the local kube-apiserver with the bootstrap certificate (O system:masters).
#
# Runs at every master boot from kaws-rbac.service, after kaws-keys.service.
# Server-side apply with force makes it idempotent, so every master may run it.
# It gives up after KAWS_RBAC_TIMEOUT seconds (default 900) so the unit fails
# visibly instead of hanging; `systemctl restart kaws-rbac` runs it again.
set -euo pipefail

cert_dir=${KAWS_CERT_DIR:-/etc/kaws}
key_dir=${KAWS_KEY_DIR:-/run/kaws}
rbac_dir=${KAWS_RBAC_DIR:-$cert_dir/rbac}
api=${KAWS_API:-https://127.0.0.1:443}
deadline=$((SECONDS + ${KAWS_RBAC_TIMEOUT:-900}))

api_curl() {
  curl -fsS --max-time 10 -o /dev/null \
    --cacert "$cert_dir/ca.pem" \
    --cert "$cert_dir/bootstrap.pem" --key "$key_dir/bootstrap-key.pem" "$@"
}

retry() { # what, command...
  local what=$1
  shift
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "kaws-rbac: gave up: $what" >&2
      exit 1
    fi
    sleep 5
  done
}

retry "kube-apiserver at $api is not ready" api_curl "$api/readyz"

for f in "$rbac_dir"/*.json; do
  IFS=_ read -r _ resource name <<<"$(basename "$f" .json)"
  retry "apply $resource/$name" api_curl -X PATCH \
    -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$f" \
    "$api/apis/rbac.authorization.k8s.io/v1/$resource/$name?fieldManager=kaws&force=true"
  echo "kaws-rbac: applied $resource/$name"
done
