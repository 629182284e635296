#!/usr/bin/env bash
# kaws against the pipeline it replaces, end to end, on this machine.
#
# Builds kaws --release, starts a moto server (the local AWS emulator) on a
# free loopback port, makes KMS keys, then runs ONE hyperfine session that
# compares, side by side:
#   kaws cluster init (default algorithm, ECDSA P-256)  vs  old pipeline (RSA-2048)
#   kaws cluster init --key-algorithm rsa-2048          vs  old pipeline (RSA-2048)
#   (for reference)                                         old pipeline (ECDSA P-256)
#   kaws admin sign                                     vs  aws kms decrypt to disk + openssl x509 -req
#   kaws --help
# and prints medians and ratios from hyperfine's JSON. Each run gets a fresh
# cluster directory from --prepare. Then it counts the KMS requests each
# command makes (moto's request recorder), and times `kaws --help` again
# without a shell (hyperfine -N) for a precise figure.
#
# Nothing leaves the machine: every AWS call goes to 127.0.0.1.
#
# usage: bash scripts/bench/run.sh
# env:   RUNS (15), WARMUP (2), BENCH_OUT (target/bench of this checkout),
#        CARGO_TARGET_DIR (where cargo builds; default target/)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
runs=${RUNS:-15}
warmup=${WARMUP:-2}
out=${BENCH_OUT:-$root/target/bench}
mkdir -p "$out"

say() { printf '\n==> %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------
if ! command -v hyperfine >/dev/null 2>&1; then
  say "Installing hyperfine"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq hyperfine >/dev/null
fi
for tool in openssl aws python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool is needed (scripts/setup-tools.sh installs aws and moto)" >&2; exit 1; }
done
python3 -c 'import moto.server' 2>/dev/null || { echo "run.sh: python3 -m pip install 'moto[server]'" >&2; exit 1; }

say "Building kaws --release"
cargo build --release --locked -q
kaws="${CARGO_TARGET_DIR:-$root/target}/release/kaws"
[ -x "$kaws" ] || { echo "run.sh: $kaws was not built" >&2; exit 1; }

# --- the emulator -----------------------------------------------------------
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
export NO_COLOR=1

cluster_key=$(aws kms create-key --description "kaws bench cluster" --query KeyMetadata.KeyId --output text)
admin_key=$(aws kms create-key --description "kaws bench admin" --query KeyMetadata.KeyId --output text)

# --- fixtures ---------------------------------------------------------------
cd "$work"
"$kaws" init repo >/dev/null
repo="$work/repo"
old="$work/old"
mkdir -p "$old"
cd "$repo"
init_args="--domain example.com --zone-id Z0BENCH --kms-key $cluster_key --ssh-key bench"
# A cluster to sign administrators in, and one administrator's CSR.
"$kaws" cluster init signer $init_args >/dev/null
"$kaws" admin create signer alice --kms-key "$admin_key" --group system:masters >/dev/null
sdir="$repo/clusters/signer"
scripts="$root/scripts/bench"

# The old scripts must make what kaws makes: check once, before timing.
bash "$scripts/old-pipeline.sh" check "$old/check" "$cluster_key" rsa
(cd "$old/check" && openssl verify -CAfile ca.pem apiserver.pem node.pem etcd.pem etcd-client.pem >/dev/null)
bash "$scripts/old-admin-sign.sh" "$sdir" signer "$sdir/alice.csr" "$old/check/alice.pem"
openssl verify -CAfile "$sdir/ca.pem" "$old/check/alice.pem" >/dev/null

# --- KMS requests per command (moto's recorder) ------------------------------
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
print(f"{sys.argv[1]:<44} {sum(ops.values()):>3} requests  " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
' "$label"
}
say "KMS requests per command"
{
  kms_requests "kaws cluster init" "$kaws" cluster init count-ec $init_args
  kms_requests "kaws cluster init --key-algorithm rsa-2048" "$kaws" cluster init count-rsa $init_args --key-algorithm rsa-2048
  kms_requests "kaws admin sign" "$kaws" admin sign signer alice --yes
  rm -f "$sdir/alice.pem"
  kms_requests "old pipeline (rsa)" bash "$scripts/old-pipeline.sh" count "$old/count" "$cluster_key" rsa
  kms_requests "old admin sign" bash "$scripts/old-admin-sign.sh" "$sdir" signer "$sdir/alice.csr" "$old/count.pem"
  kms_requests "kaws --help" "$kaws" --help
} | tee "$out/kms-requests.txt"

# --- timing -----------------------------------------------------------------
say "hyperfine: --warmup $warmup --runs $runs ($(nproc) cores)"
hyperfine --warmup "$warmup" --runs "$runs" --style basic \
  --export-json "$out/hyperfine.json" --export-markdown "$out/hyperfine.md" \
  -n "kaws cluster init (ecdsa-p256, default)" \
  --prepare "rm -rf $repo/clusters/bench-ec" \
  "$kaws cluster init bench-ec $init_args" \
  -n "kaws cluster init --key-algorithm rsa-2048" \
  --prepare "rm -rf $repo/clusters/bench-rsa" \
  "$kaws cluster init bench-rsa $init_args --key-algorithm rsa-2048" \
  -n "old pipeline (openssl genrsa 2048 + aws kms encrypt)" \
  --prepare "rm -rf $old/rsa" \
  "bash $scripts/old-pipeline.sh bench-old $old/rsa $cluster_key rsa" \
  -n "old pipeline (openssl ecparam P-256 + aws kms encrypt)" \
  --prepare "rm -rf $old/ec" \
  "bash $scripts/old-pipeline.sh bench-old $old/ec $cluster_key ec" \
  -n "kaws admin sign" \
  --prepare "rm -f $sdir/alice.pem" \
  "$kaws admin sign signer alice --yes" \
  -n "old admin sign (aws kms decrypt to disk + openssl x509 -req)" \
  --prepare "rm -f $old/alice.pem" \
  "bash $scripts/old-admin-sign.sh $sdir signer $sdir/alice.csr $old/alice.pem" \
  -n "kaws --help" \
  --prepare "true" \
  "$kaws --help"

say "hyperfine -N: kaws --help without a shell"
hyperfine -N --warmup 5 --runs 200 --style basic --export-json "$out/help.json" "$kaws --help"

# --- summary ----------------------------------------------------------------
say "Summary (medians; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
python3 - "$out/hyperfine.json" "$out/help.json" <<'EOF' | tee "$out/summary.txt"
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
help_n = json.load(open(sys.argv[2]))["results"][0]
def med(name): return res[name]["median"]
print(f"{'command':<62} {'median':>10} {'mean ± sd':>20}")
for name, r in res.items():
    print(f"{name:<62} {r['median']*1000:>8.1f}ms {r['mean']*1000:>10.1f} ± {r['stddev']*1000:5.1f}ms")
print(f"{'kaws --help (hyperfine -N, 200 runs)':<62} {help_n['median']*1000:>8.2f}ms {help_n['mean']*1000:>10.2f} ± {help_n['stddev']*1000:5.2f}ms")
old_rsa = med("old pipeline (openssl genrsa 2048 + aws kms encrypt)")
old_ec = med("old pipeline (openssl ecparam P-256 + aws kms encrypt)")
checks = [
    ("cluster init, default vs old pipeline (rsa)", old_rsa / med("kaws cluster init (ecdsa-p256, default)"), 20),
    ("cluster init, rsa-2048 vs old pipeline (rsa)", old_rsa / med("kaws cluster init --key-algorithm rsa-2048"), 4),
    ("cluster init, default vs old pipeline (ec), for reference", old_ec / med("kaws cluster init (ecdsa-p256, default)"), None),
    ("admin sign vs decrypt-to-disk + openssl x509 -req", med("old admin sign (aws kms decrypt to disk + openssl x509 -req)") / med("kaws admin sign"), 10),
]
print()
for what, ratio, target in checks:
    verdict = "" if target is None else ("  target >= %dx: %s" % (target, "met" if ratio >= target else "MISSED"))
    print(f"{what:<62} {ratio:6.1f}x{verdict}")
h = help_n["median"] * 1000
print(f"{'kaws --help':<62} {h:6.2f}ms  target < 10 ms: {'met' if h < 10 else 'MISSED'}")
EOF
echo "Results in $out (hyperfine.json, hyperfine.md, help.json, kms-requests.txt, summary.txt)" >&2
