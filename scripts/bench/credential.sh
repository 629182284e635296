#!/usr/bin/env bash
# The cost of `kaws admin credential`, the kubectl exec credential plugin,
# per kubectl call, as whole processes against a local moto server.
#
# Builds kaws --release, starts moto on a free loopback port, makes a
# cluster and a signed administrator, then:
#   1. counts the KMS requests one plugin call makes (moto's recorder);
#   2. times, with hyperfine -N (no shell) and many runs, side by side:
#        kaws admin credential (what kubectl runs, KUBERNETES_EXEC_INFO set)
#        the same through a local TLS proxy to moto (real KMS is HTTPS)
#        the same for an unknown administrator (everything before KMS)
#        kaws --help (process start and exit)
#   3. times kubectl itself against `openssl s_server -Verify`, with the
#      kubeconfig `kaws admin install` writes (exec entry) and with
#      `--embed`, so the plugin's share of a kubectl call shows;
#   4. splits single plugin calls into phases with strace (where the time goes).
# Medians, in milliseconds; results in $BENCH_OUT (target/bench/credential).
#
# Nothing leaves the machine: every AWS call goes to 127.0.0.1.
#
# usage: bash scripts/bench/credential.sh
# env:   RUNS (200), WARMUP (10), KUBECTL_RUNS (30), BENCH_OUT,
#        CARGO_TARGET_DIR (where cargo builds; default target/),
#        KAWS (a kaws binary to use instead of building one)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
runs=${RUNS:-200}
warmup=${WARMUP:-10}
kubectl_runs=${KUBECTL_RUNS:-30}
out=${BENCH_OUT:-$root/target/bench/credential}
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
for tool in openssl aws python3 curl kubectl strace; do
  command -v "$tool" >/dev/null 2>&1 || { echo "credential.sh: $tool is needed" >&2; exit 1; }
done
python3 -c 'import moto.server' 2>/dev/null || { echo "credential.sh: python3 -m pip install 'moto[server]'" >&2; exit 1; }

if [ -n "${KAWS:-}" ]; then
  kaws=$KAWS
else
  say "Building kaws --release"
  cargo build --release --locked -q
  kaws="${CARGO_TARGET_DIR:-$root/target}/release/kaws"
fi
[ -x "$kaws" ] || { echo "credential.sh: $kaws is not an executable" >&2; exit 1; }

# --- the emulator -----------------------------------------------------------
work=$(mktemp -d)
moto_pid=""
server_pid=""
tls_pid=""
cleanup() {
  if [ -n "$tls_pid" ]; then kill "$tls_pid" 2>/dev/null || true; wait "$tls_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
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
export NO_COLOR=1 HOME="$work/home"
mkdir -p "$HOME"

cluster_key=$(aws kms create-key --description "kaws bench cluster" --query KeyMetadata.KeyId --output text)
admin_key=$(aws kms create-key --description "kaws bench admin" --query KeyMetadata.KeyId --output text)

# --- fixtures ---------------------------------------------------------------
cd "$work"
"$kaws" init repo >/dev/null
repo="$work/repo"
(
  cd "$repo"
  "$kaws" cluster init bench --domain example.com --zone-id Z0BENCH --kms-key "$cluster_key" --ssh-key bench >/dev/null
  "$kaws" admin create bench alice --kms-key "$admin_key" --group system:masters >/dev/null
  "$kaws" admin sign bench alice --yes 2>/dev/null >/dev/null
  "$kaws" -q admin install bench alice --kubeconfig "$work/kubeconfig-exec"
  "$kaws" -q admin install bench alice --kubeconfig "$work/kubeconfig-embed" --embed
)
export KUBERNETES_EXEC_INFO='{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}'
plugin=("$kaws" admin credential bench alice --repository "$repo")
"${plugin[@]}" | python3 -c 'import json,sys; assert json.load(sys.stdin)["kind"] == "ExecCredential"'

# --- KMS requests per call (moto's recorder) ---------------------------------
rec() { curl -s -X POST "$moto/moto-api/recorder/$1" >/dev/null; }
say "KMS requests per plugin call"
rec reset-recording; rec start-recording
"${plugin[@]}" >/dev/null
rec stop-recording
curl -s "$moto/moto-api/recorder/download-recording" | python3 -c '
import json, sys, collections
ops = collections.Counter()
for line in sys.stdin:
    line = line.strip()
    if line:
        ops[json.loads(line)["headers"].get("X-Amz-Target", "?").split(".")[-1]] += 1
print(f"kaws admin credential: {sum(ops.values())} requests  " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
' | tee "$out/kms-requests.txt"

# --- HTTPS in front of moto ---------------------------------------------------
# Real KMS is reached over TLS: a small Python TLS proxy in front of moto,
# with a throwaway CA the SDK trusts through SSL_CERT_FILE, shows what TLS
# adds to a call (the handshake, and the first use of aws-lc's random
# number generator in the process).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/tca.key" \
  -out "$work/tca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/tls.key" \
  -out "$work/tls.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/tca.pem" -CAkey "$work/tca.key" -CAcreateserial \
  -days 2 -extfile "$work/tls.ext" -out "$work/tls.pem" 2>/dev/null
cat >"$work/tlsproxy.py" <<'EOF'
import socket, ssl, sys, threading
cert, key, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except OSError:
        return
    u = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pump, args=(t, u), daemon=True).start()
    pump(u, t)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
python3 "$work/tlsproxy.py" "$work/tls.pem" "$work/tls.key" "$port" >"$work/tlsport" 2>/dev/null &
tls_pid=$!
for _ in $(seq 50); do [ -s "$work/tlsport" ] && break; sleep 0.1; done
https="https://localhost:$(cat "$work/tlsport")"
SSL_CERT_FILE="$work/tca.pem" AWS_ENDPOINT_URL="$https" "${plugin[@]}" >/dev/null

# --- the plugin, whole processes ---------------------------------------------
say "hyperfine -N: --warmup $warmup --runs $runs ($(nproc) cores)"
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic \
  --export-json "$out/plugin.json" --export-markdown "$out/plugin.md" \
  -n "kaws admin credential (KMS Decrypt, moto over HTTP)" \
  "env AWS_ENDPOINT_URL=$moto ${plugin[*]}" \
  -n "kaws admin credential (KMS Decrypt, moto behind a local TLS proxy)" \
  "env SSL_CERT_FILE=$work/tca.pem AWS_ENDPOINT_URL=$https ${plugin[*]}" \
  -n "kaws admin credential, unknown administrator (no KMS)" -i \
  "env AWS_ENDPOINT_URL=$moto $kaws admin credential bench nobody --repository $repo" \
  -n "kaws --help" \
  "env $kaws --help"
kill "$tls_pid" 2>/dev/null || true

# --- kubectl, exec entry against embedded key ---------------------------------
say "kubectl against openssl s_server -Verify, exec entry vs --embed"
d="$repo/clusters/bench"
aws kms decrypt --ciphertext-blob "fileb://$d/apiserver-key.pem.encrypted" \
  --encryption-context kaws:cluster=bench,kaws:file=apiserver-key.pem \
  --query Plaintext --output text | base64 -d >"$work/apiserver-key.pem"
sport=$(free_port)
(cd "$d" && exec openssl s_server -accept "127.0.0.1:$sport" -Verify 1 -verify_return_error \
  -CAfile ca.pem -cert apiserver.pem -key "$work/apiserver-key.pem" -www) >/dev/null 2>&1 </dev/null &
server_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break
  sleep 0.1
done
k() { echo "kubectl --kubeconfig $work/$1 --context bench --server https://127.0.0.1:$sport --tls-server-name kubernetes.example.com get --raw /"; }
kc() { kubectl --kubeconfig "$work/$1" --context bench --server "https://127.0.0.1:$sport" --tls-server-name kubernetes.example.com get --raw / >/dev/null; }
kc kubeconfig-exec
kc kubeconfig-embed
hyperfine -N --warmup 3 --runs "$kubectl_runs" --style basic \
  --export-json "$out/kubectl.json" --export-markdown "$out/kubectl.md" \
  -n "kubectl get --raw / (exec entry: runs kaws admin credential)" "$(k kubeconfig-exec)" \
  -n "kubectl get --raw / (--embed: key in the kubeconfig)" "$(k kubeconfig-embed)"

# --- where the time goes -------------------------------------------------------
say "Where the time goes: phases of single plugin calls under strace -f -ttt (best of 5)"
for i in 1 2 3 4 5; do
  strace -f -ttt -e trace=execve,openat,connect,write,recvfrom,read,exit_group \
    -o "$work/strace-$i.log" "${plugin[@]}" >/dev/null
done
python3 - "$work"/strace-*.log <<'EOF' | tee "$out/phases.txt"
import re, sys
names = ["start to TLS roots (exec, arguments, runtime, AWS config)",
         "loading the TLS roots (/etc/ssl/certs)",
         "roots to connect (repository files, client, signing)",
         "KMS Decrypt: connect to last response byte",
         "after the response: parse, match, ExecCredential",
         "write to exit"]
runs = []
for path in sys.argv[1:]:
    ev = {}
    for line in open(path):
        m = re.match(r"\d+\s+(\d+\.\d+) (\w+)\((.*)", line)
        if not m:
            continue
        t, call, rest = float(m.group(1)), m.group(2), m.group(3).strip()
        ev.setdefault("exec", t)
        if call == "openat" and "/etc/ssl/certs" in rest:
            ev.setdefault("roots0", t)
            ev["roots1"] = t
        if call == "connect" and "127.0.0.1" in rest:
            ev.setdefault("connect", t)
        if call in ("recvfrom", "read") and "connect" in ev and "out" not in ev:
            if re.search(r"= [1-9]\d*$", rest):
                ev["recv"] = t
        if call == "write" and rest.startswith("1,"):
            ev.setdefault("out", t)
        if call == "exit_group":
            ev["exit"] = t
    keys = ["exec", "roots0", "roots1", "connect", "recv", "out", "exit"]
    if all(k in ev for k in keys):
        runs.append([(ev[b] - ev[a]) * 1000 for a, b in zip(keys, keys[1:])]
                    + [(ev["exit"] - ev["exec"]) * 1000])
if not runs:
    print("no complete trace")
    sys.exit(0)
best = min(runs, key=lambda r: r[-1])
for n, v in zip(names, best):
    print(f"{n:<60} {v:7.2f} ms")
print(f"{'total under strace (which slows every system call)':<60} {best[-1]:7.2f} ms")
EOF

# --- summary ----------------------------------------------------------------
say "Medians (ms)"
python3 - "$out/plugin.json" "$out/kubectl.json" <<'EOF' | tee "$out/summary.txt"
import json, sys
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        t = sorted(r["times"])
        print(f'{r["command"][:70]:<70} median {r["median"]*1000:8.2f}  mean {r["mean"]*1000:8.2f} ± {r["stddev"]*1000:6.2f}  '
              f'min {t[0]*1000:7.2f}  user {r["user"]*1000:6.2f}  sys {r["system"]*1000:6.2f}  runs {len(t)}')
EOF
