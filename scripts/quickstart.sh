#!/usr/bin/env bash
# The kaws quickstart: the whole workflow against a local AWS emulator (the
# moto server on a loopback port), explained step by step. Nothing here
# reaches real AWS: every AWS call goes to AWS_ENDPOINT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
  step() { printf '\n==> %s\n' "$*"; }
fi

step "Installing what is missing (moto, the aws CLI) and building kaws"
bash scripts/setup-tools.sh
cargo build --locked -q
export PATH="$src/target/debug:$PATH"

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

step "Creating a KMS key with the key policy kaws prints: it names the primary administrators and keeps each server to its own files"
kaws cluster key-policy demo --administrator arn:aws:iam::123456789012:role/kaws-quickstart > "$work/key-policy.json"
kms_key=$(aws kms create-key --description "kaws quickstart" --policy "file://$work/key-policy.json" \
  --query KeyMetadata.KeyId --output text)
echo "KMS key: $kms_key"

step "Creating what the cluster needs in AWS: a Route 53 zone, an EC2 key pair"
zone_id=$(aws route53 create-hosted-zone --name quickstart.example.com --caller-reference "kaws-$$" \
  --query HostedZone.Id --output text)
zone_id=${zone_id#/hostedzone/}
aws ec2 create-key-pair --key-name quickstart --query KeyName --output text
# The emulator has no Flatcar image; any image it knows stands in for it.
ami=$(aws ec2 describe-images --owners amazon --query 'Images[0].ImageId' --output text)

# Terraform installs the AWS provider from this machine's filesystem mirror.
mirror=$(find / -xdev -type d -name registry.terraform.io -not -path '*/.terraform/*' 2>/dev/null | head -n 1)
cat >"$work/terraform.rc" <<TF
provider_installation {
  filesystem_mirror {
    path    = "$(dirname "$mirror")"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
TF
export TF_CLI_CONFIG_FILE="$work/terraform.rc" CHECKPOINT_DISABLE=1

step "kaws init: a new kaws repository (a git repository of settings, certificates and encrypted keys)"
cd "$work"
kaws init infra
cd infra
git init -q .

step "kaws cluster init: the cluster's settings and PKI, every private key sealed by KMS (servers behind NAT: the default, private topology)"
kaws cluster init demo --domain quickstart.example.com --zone-id "$zone_id" --kms-key "$kms_key" \
  --ssh-key quickstart --ami "$ami"

step "openssl, an independent judge, verifies each chain against its own CA"
(cd clusters/demo &&
  openssl verify -CAfile ca.pem apiserver.pem kube-proxy.pem flannel.pem kubelet-signer.pem &&
  openssl verify -CAfile etcd-ca.pem etcd.pem etcd-client.pem &&
  openssl verify -CAfile front-proxy-ca.pem front-proxy-client.pem)

step "In an emergency, the aws CLI alone recovers a key (here: checked against its certificate, never written to disk)"
(cd clusters/demo &&
  aws kms decrypt --ciphertext-blob fileb://apiserver-key.pem.encrypted \
    --encryption-context kaws:cluster=demo,kaws:file=apiserver-key.pem \
    --query Plaintext --output text | base64 -d | openssl pkey -pubout |
  cmp -s - <(openssl x509 -in apiserver.pem -noout -pubkey) && echo "apiserver-key.pem matches apiserver.pem")

step "kaws cluster reencrypt: the keys move to a new KMS key (not revocation: the keys stay the same)"
new_key=$(aws kms create-key --description "kaws quickstart, rotated" --query KeyMetadata.KeyId --output text)
kaws cluster reencrypt demo --new-key "$new_key"

step "kaws admin create: a new administrator (alice) makes her key, sealed by her own KMS key, and a CSR"
alice_key=$(aws kms create-key --description "alice" --query KeyMetadata.KeyId --output text)
kaws admin create demo alice --kms-key "$alice_key" --group system:masters | tee "$work/alice.txt"
fingerprint=$(awk '/^Public key fingerprint/ {print $NF}' "$work/alice.txt")

step "kaws admin sign: a primary administrator checks the fingerprint alice gave out of band, and signs"
kaws admin sign demo alice --fingerprint "$fingerprint" --yes

step "kaws admin install: alice merges her credentials into her kubeconfig (an exec entry: no key in the file)"
kaws admin install demo alice
kubectl config get-contexts
if grep -q client-key-data "$KUBECONFIG"; then echo "a key in $KUBECONFIG" >&2; exit 1; fi
# What kubectl gets from the plugin at each call (the key is printed to the pipe only).
kaws admin credential demo alice \
  | python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["kind"], c["apiVersion"], "until", c["status"]["expirationTimestamp"])'
kaws admin list demo

step "kaws cluster check: every certificate, key and administrator verified"
kaws cluster check demo

step "kaws cluster plan / apply: the real Terraform builds the cluster in the emulator (about two minutes)"
kaws cluster plan demo -- -no-color -compact-warnings >"$work/plan.txt"
grep -E '^Plan:' "$work/plan.txt"
kaws cluster apply demo -- -auto-approve -no-color -compact-warnings | grep -E '^(Apply complete|Outputs)'
kaws cluster output demo

step "A second plan finds nothing to change"
kaws cluster plan demo -- -detailed-exitcode -no-color >/dev/null && echo "No changes."

step "kaws cluster destroy: everything the cluster made in AWS is removed"
kaws cluster destroy demo -- -auto-approve -no-color | grep -E '^Destroy complete'

printf '\nQuickstart finished: every step above ran against the local emulator.\n'
