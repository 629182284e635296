#!/bin/bash
# kaws-refresh-keys: take renewed certificates and keys; restart the units
# reading them (KAWS_RESTART="unit:file,..."). docs/guides/renew-certificates.md
# shellcheck disable=SC2154 # cert_dir, key_dir, s3, access_key: set there
set -euo pipefail
# shellcheck source=/dev/null
. "${KAWS_DECRYPT:-/opt/kaws/bin/kaws-decrypt-keys}"
state=${KAWS_STATE_DIR:-/run/kaws-refresh}
log() { echo "kaws-refresh-keys: $*" >&2; }
fail() {
  log "$1 failed; nothing replaced"
  exit 1
}
eval "instance_$(declare -f credentials)"
credentials() { [ -n "$access_key" ] || instance_credentials; }
same() { [ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ]; }

# Stage what differs; KMS only for a ciphertext not decrypted before.
new_certs=$cert_dir/.refresh new_keys=$key_dir/.refresh
trap 'rm -rf "$new_certs" "$new_keys"' EXIT
mkdir -p "$state" "$new_certs" "$new_keys"
changed=() sums=()
for name in $KAWS_CERTS; do
  cert_dir=$new_certs fetch_cert "$name" || fail "fetching certs/$name"
  if same "$new_certs/$name" "$cert_dir/$name"; then rm "$new_certs/$name"; else changed+=("$name"); fi
done
for name in $KAWS_KEYS; do
  sum=$(aws_curl s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$s3/keys/$name.encrypted" | sha256sum) ||
    fail "fetching keys/$name.encrypted"
  [ "$sum" != "$(cat "$state/$name" 2>/dev/null)" ] || continue
  key_dir=$new_keys decrypt_key "$name" || fail "decrypting keys/$name.encrypted"
  sums+=("$name")
  echo "$sum" >"$new_keys/$name.sum"
  if same "$new_keys/$name" "$key_dir/$name"; then rm "$new_keys/$name"; else changed+=("$name"); fi
done

# All read: rename in place. A unit stays in $state/restart until restarted.
for name in "${changed[@]}"; do
  if [ -f "$new_keys/$name" ]; then mv -f "$new_keys/$name" "$key_dir"; else mv -f "$new_certs/$name" "$cert_dir"; fi
  log "replaced $name"
  for u in $KAWS_RESTART; do
    case ,${u#*:}, in *",$name,"*) echo "${u%%:*}" >>"$state/restart" ;; esac
  done
done
for name in "${sums[@]}"; do mv -f "$new_keys/$name.sum" "$state/$name"; done
[ -s "$state/restart" ] || exit 0
units=$(sort -u "$state/restart" | tr "\n" " ")
if [ -n "${KAWS_RESTART_GATE:-}" ] && ! "$KAWS_RESTART_GATE"; then
  log "not restarting $units yet"
  exit 1
fi
# shellcheck disable=SC2086
systemctl try-restart $units
rm "$state/restart"
log "restarted $units"
