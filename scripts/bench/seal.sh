#!/usr/bin/env bash
# The seal's cost on each privileged command, whole process, against moto.
#
# Runs two kaws binaries side by side in one hyperfine session per command:
# this checkout's (which opens the seal before the command and seals after)
# and a build of the commit before the seal (BASE, a kaws binary), each in
# its own copy of the same repository (the base copy has no seal.json,
# which that kaws would refuse as an unknown file). Commands:
#   admin sign --renew -y        check + sign + seal again (alice.pem changed)
#   cluster renew                check + renew + seal again
#   cluster reencrypt (same key) check + reencrypt + seal again
#   cluster plan, a stub terraform that exits 0: kaws' own work only (check)
#   cluster seal (nothing changed): opening the seal alone
# then prints the medians, the differences, and the seal's size in bytes
# (with 0 and with 100 administrators).
#
# usage: BASE=/path/to/old/kaws bash scripts/bench/seal.sh
# env:   RUNS (10), WARMUP (1), BENCH_OUT (target/bench), KAWS (this
#        checkout's release binary, built if unset)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
runs=${RUNS:-10}
warmup=${WARMUP:-1}
out=${BENCH_OUT:-$root/target/bench}
mkdir -p "$out"
say() { printf '\n==> %s\n' "$*" >&2; }
: "${BASE:?set BASE to a kaws binary built from the commit before the seal}"
if [ -z "${KAWS:-}" ]; then
  say "Building kaws --release"
  cargo build --release --locked -q
  KAWS="${CARGO_TARGET_DIR:-$root/target}/release/kaws"
fi
for tool in hyperfine aws python3 curl; do
  command -v "$tool" >/dev/null || { echo "seal.sh: $tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 150); do
  curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export NO_COLOR=1 KAWS_TERRAFORM="$work/terraform"
printf '#!/bin/sh\nmkdir -p .terraform\nexit 0\n' >"$KAWS_TERRAFORM"
chmod +x "$KAWS_TERRAFORM"

key=$(aws kms create-key --query KeyMetadata.KeyId --output text)
admin_key=$(aws kms create-key --query KeyMetadata.KeyId --output text)
cd "$work"
"$KAWS" init new >/dev/null
(cd new && git init -q \
  && "$KAWS" cluster init prod --domain example.com --zone-id Z0BENCH --kms-key "$key" --ssh-key bench >/dev/null \
  && "$KAWS" admin create prod alice --kms-key "$admin_key" >/dev/null \
  && "$KAWS" admin sign prod alice -y >/dev/null 2>&1)
cp -a new base
rm -f base/clusters/prod/seal.json base/.git/kaws-prod.seal.json
size0=$(wc -c <new/clusters/prod/seal.json)

run() { # name args...
  local name=$1; shift
  say "$name"
  hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
    --export-json "$out/seal-$name.json" \
    -n "with the seal" "sh -c 'cd $work/new && exec $KAWS $*'" \
    -n "before the seal" "sh -c 'cd $work/base && exec $BASE $*'" >/dev/null
}
run admin-sign "admin sign prod alice --renew -y"
run renew "cluster renew prod"
run reencrypt "cluster reencrypt prod --new-key $key"
run plan "cluster plan prod"
say "cluster seal (nothing changed: open and compare only)"
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
  --export-json "$out/seal-seal.json" \
  -n "with the seal" "sh -c 'cd $work/new && exec $KAWS cluster seal prod'" >/dev/null

# The seal's size with 100 more administrators' requests (three files each).
for i in $(seq 1 100); do
  (cd new && "$KAWS" admin create prod "admin$i" --kms-key "$admin_key" >/dev/null)
done
# Requests are expected, not sealed on their own: a renewal seals them.
(cd new && "$KAWS" cluster renew prod >/dev/null 2>&1)
size100=$(wc -c <new/clusters/prod/seal.json)

python3 - "$out" "$size0" "$size100" <<'EOF' | tee "$out/seal-summary.txt"
import json, sys
out, size0, size100 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"{'command':<46} {'with seal':>10} {'before':>10} {'cost':>9}")
for name, label in [("admin-sign", "kaws admin sign --renew"), ("renew", "kaws cluster renew"),
                    ("reencrypt", "kaws cluster reencrypt"), ("plan", "kaws cluster plan (stub terraform)"),
                    ("seal", "kaws cluster seal (nothing to seal)")]:
    res = {r["command"]: r for r in json.load(open(f"{out}/seal-{name}.json"))["results"]}
    new = res["with the seal"]["median"] * 1000
    old = res.get("before the seal", {}).get("median")
    if old is None:
        print(f"{label:<46} {new:>8.1f}ms {'-':>10} {'-':>9}")
    else:
        old *= 1000
        print(f"{label:<46} {new:>8.1f}ms {old:>8.1f}ms {new-old:>+7.1f}ms")
print(f"seal.json: {size0} bytes (one administrator); {size100} bytes with 100 more requests")
EOF
