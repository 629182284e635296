#!/bin/bash
# kaws-etcd-turn: may this etcd member restart now? kaws-refresh-keys asks
# before restarting etcd. Member i (KAWS_ETCD_INDEX, in the order of
# KAWS_ETCD_ENDPOINTS) restarts only in the first half of the minutes m with
# m mod members = i, which leaves a restart at least half a minute before
# the next member may start one, and only while every other member answers
# /health: quorum holds.
set -euo pipefail
cert_dir=${KAWS_CERT_DIR:-/etc/kaws} key_dir=${KAWS_KEY_DIR:-/run/kaws}
read -ra members <<<"${KAWS_ETCD_ENDPOINTS:?}"
n=${#members[@]} slot=${KAWS_ETCD_SLOT:-60} me=${KAWS_ETCD_INDEX:?} now=$(date +%s)
wait=$(((me - now / slot % n + n) % n * slot - now % slot))
[ "$wait" -ge $((-slot / 2)) ] || wait=$((wait + n * slot))
if [ "$wait" -gt 0 ]; then
  echo "kaws-etcd-turn: waiting ${wait}s for member $me's turn" >&2
  sleep "$wait"
fi
for i in "${!members[@]}"; do
  [ "$i" = "$me" ] && continue
  curl -fsS --max-time 5 --cacert "$cert_dir/etcd-ca.pem" --cert "$cert_dir/etcd.pem" \
    --key "$key_dir/etcd-key.pem" "${members[$i]}/health" | grep -q '"health":"true"' || {
    echo "kaws-etcd-turn: etcd member ${members[$i]} is not healthy" >&2
    exit 1
  }
done
