#!/bin/bash
# kaws-refresh-keys: take renewed certificates and keys, and restart the units
# that read one that changed (docs/guides/renew-certificates.md).
# shellcheck disable=SC2154 # cert_dir, key_dir, s3, access_key: set there
set -euo pipefail
# shellcheck source=/dev/null
. "${KAWS_DECRYPT:-/opt/kaws/bin/kaws-decrypt-keys}"
state=${KAWS_STATE_DIR:-/run/kaws-refresh}
log() { echo "kaws-refresh-keys: $*" >&2; }
fail() {
  log "$1 failed; nothing replaced, trying again at the next tick"
  exit 1
}
eval "instance_$(declare -f credentials)"
credentials() { [ -n "$access_key" ] || instance_credentials; }
same() { [ "$(sha256sum <"$1")" = "$(sha256sum <"$2" 2>/dev/null)" ]; }

new_certs=$cert_dir/.refresh new_keys=$key_dir/.refresh
trap 'rm -rf "$new_certs" "$new_keys"' EXIT
mkdir -p "$state" "$new_certs" "$new_keys"
changed=() sums=()
for name in ${KAWS_CERTS:-}; do
  cert_dir=$new_certs fetch_cert "$name" || fail "fetching certs/$name"
  if same "$new_certs/$name" "$cert_dir/$name"; then rm "$new_certs/$name"; else changed+=("$name"); fi
done
for name in ${KAWS_KEYS:-}; do
  sum=$(aws_curl s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$s3/keys/$name.encrypted" | sha256sum) ||
    fail "fetching keys/$name.encrypted"
  [ "${sum%% *}" != "$(cat "$state/$name.sha256" 2>/dev/null)" ] || continue
  key_dir=$new_keys decrypt_key "$name" || fail "decrypting keys/$name.encrypted"
  sums+=("$name:${sum%% *}")
  if same "$new_keys/$name" "$key_dir/$name"; then rm "$new_keys/$name"; else changed+=("$name"); fi
done

# Every object was read: rename the changed files in place. KAWS_RESTART is
# "unit:file,file ..."; a unit to restart stays in $state/restart until it is.
for name in "${changed[@]}"; do
  if [ -f "$new_keys/$name" ]; then mv -f "$new_keys/$name" "$key_dir/$name"; else mv -f "$new_certs/$name" "$cert_dir/$name"; fi
  log "replaced $name"
  for entry in ${KAWS_RESTART:-}; do
    case ",${entry#*:}," in *",$name,"*) echo "${entry%%:*}" >>"$state/restart" ;; esac
  done
done
for s in "${sums[@]}"; do echo "${s#*:}" >"$state/${s%%:*}.sha256"; done
[ -s "$state/restart" ] || exit 0
units=$(sort -u "$state/restart")
if [ -n "${KAWS_RESTART_GATE:-}" ] && ! "$KAWS_RESTART_GATE"; then
  log "not restarting ${units//$'\n'/ } yet; trying again at the next tick"
  exit 1
fi
# shellcheck disable=SC2086
systemctl try-restart $units
rm -f "$state/restart"
log "restarted ${units//$'\n'/ }"
