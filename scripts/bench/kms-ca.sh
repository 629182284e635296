#!/usr/bin/env bash
# CA keys in KMS (issue 17) beside sealed CA keys, end to end, on this
# machine: `kaws cluster init` and `kaws admin sign` with --ca-key kms and
# --ca-key sealed, whole process against a local moto server, in one
# hyperfine session (medians), then the KMS requests each makes (moto's
# request recorder).
#
# Every run of `cluster init` gets a new cluster name: with --ca-key kms
# the CA keys' aliases (alias/kaws-<cluster>-<ca>) are per cluster. Both
# commands are started the same way (bash, a counter file) so the overhead
# is the same.
#
# Nothing leaves the machine: every AWS call goes to 127.0.0.1.
#
# usage: bash scripts/bench/kms-ca.sh
# env:   RUNS (10), WARMUP (1), BENCH_OUT (target/bench/kms-ca),
#        KAWS (a kaws binary; default: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
runs=${RUNS:-10}
warmup=${WARMUP:-1}
out=${BENCH_OUT:-$root/target/bench/kms-ca}
mkdir -p "$out"
say() { printf '\n==> %s\n' "$*" >&2; }

for tool in hyperfine openssl aws python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kms-ca.sh: $tool is needed" >&2; exit 1; }
done
if [ -z "${KAWS:-}" ]; then
  say "Building kaws --release"
  cargo build --release --locked -q
  KAWS="${CARGO_TARGET_DIR:-$root/target}/release/kaws"
fi
kaws=$KAWS

work=$(mktemp -d)
moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "Starting moto on 127.0.0.1:$port"
MOTO_RECORDER_FILEPATH="$work/moto-recording.jsonl" \
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 150); do
  curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break
  sleep 0.1
done
moto="http://127.0.0.1:$port"
export AWS_ENDPOINT_URL="$moto" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export KAWS_IMDS=http://127.0.0.1:9 NO_COLOR=1

cluster_key=$(aws kms create-key --description "kaws bench cluster" --query KeyMetadata.KeyId --output text)
admin_key=$(aws kms create-key --description "kaws bench admin" --query KeyMetadata.KeyId --output text)

cd "$work"
"$kaws" init repo >/dev/null
repo="$work/repo"
cd "$repo"
init_args="--domain example.com --zone-id Z0BENCH --kms-key $cluster_key --ssh-key bench"
for mode in kms sealed; do
  "$kaws" cluster init "sign-$mode" $init_args --ca-key "$mode" >/dev/null
  "$kaws" admin create "sign-$mode" alice --kms-key "$admin_key" --group system:masters >/dev/null
done
echo 0 >"$work/n"
# `init MODE`: a cluster of a new name each run.
cat >"$work/init.sh" <<EOF
n=\$(cat "$work/n"); echo \$((n + 1)) >"$work/n"
exec "$kaws" cluster init "b\$n" $init_args --ca-key "\$1" >/dev/null
EOF

rec() { curl -s -X POST "$moto/moto-api/recorder/$1" >/dev/null; }
kms_requests() { # label command...
  local label=$1; shift
  rec reset-recording; rec start-recording
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  rec stop-recording
  curl -s "$moto/moto-api/recorder/download-recording" | python3 -c '
import json, sys, collections
ops = collections.Counter()
for line in sys.stdin:
    line = line.strip()
    if line:
        ops[json.loads(line)["headers"].get("X-Amz-Target", "?").split(".")[-1]] += 1
print(f"{sys.argv[1]:<40} {sum(ops.values()):>3} requests  " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
' "$label"
}
say "KMS requests per command"
{
  kms_requests "cluster init --ca-key kms" bash "$work/init.sh" kms
  kms_requests "cluster init --ca-key sealed" bash "$work/init.sh" sealed
  kms_requests "admin sign (kms CA)" "$kaws" admin sign sign-kms alice --yes
  kms_requests "admin sign (sealed CA)" "$kaws" admin sign sign-sealed alice --yes
} | tee "$out/kms-requests.txt"

say "hyperfine: --warmup $warmup --runs $runs ($(nproc) cores)"
hyperfine --warmup "$warmup" --runs "$runs" --style basic \
  --export-json "$out/hyperfine.json" --export-markdown "$out/hyperfine.md" \
  -n "cluster init --ca-key kms" "bash $work/init.sh kms" \
  -n "cluster init --ca-key sealed" "bash $work/init.sh sealed" \
  --prepare "rm -f $repo/clusters/sign-kms/alice.pem $repo/clusters/sign-sealed/alice.pem" \
  -n "admin sign (kms CA)" "$kaws admin sign sign-kms alice --yes" \
  -n "admin sign (sealed CA)" "$kaws admin sign sign-sealed alice --yes" >&2

python3 - "$out/hyperfine.json" <<'EOF' | tee "$out/medians.txt"
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['command']:<32} median {r['median']*1000:8.1f} ms   mean {r['mean']*1000:8.1f} ± {r['stddev']*1000:.1f} ms   ({len(r['times'])} runs)")
EOF
