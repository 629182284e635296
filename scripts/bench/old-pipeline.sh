#!/usr/bin/env bash
# The pipeline `kaws cluster init` replaces, reproduced for benchmarking:
# one openssl process per key and per certificate, plaintext private keys
# on disk in a temporary directory, then one `aws kms encrypt` (a new
# aws CLI process) per private key, with the encryption context kaws uses:
#   {"kaws:cluster": CLUSTER, "kaws:file": "<stem>-key.pem"}
# The plaintext keys are deleted at the end, as the old scripts did.
#
# It makes what kaws makes (see src/pki.rs, CLUSTER_CERTS): the CA, the
# apiserver, node, etcd and etcd-client certificates, and the bare
# service-account key pair, with the same subjects, SANs and usages.
#
# usage: old-pipeline.sh CLUSTER OUT_DIR KMS_KEY [rsa|ec]
#   rsa (default): `openssl genrsa 2048` per key, as the original did
#   ec:            `openssl ecparam -name prime256v1 -genkey` per key
# AWS_ENDPOINT_URL, credentials and region come from the environment.
set -euo pipefail

cluster=$1
out=$2
kms_key=$3
alg=${4:-rsa}
domain=${DOMAIN:-example.com}
service_ip=${SERVICE_IP:-10.3.0.1}

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

genkey() {
  case $alg in
    rsa) openssl genrsa -out "$1" 2048 2>/dev/null ;;
    ec) openssl ecparam -name prime256v1 -genkey -noout -out "$1" ;;
    *) echo "old-pipeline.sh: unknown algorithm $alg" >&2; exit 2 ;;
  esac
}

if [ "$alg" = rsa ]; then leaf_ku="critical,digitalSignature,keyEncipherment"; else leaf_ku="critical,digitalSignature"; fi

cat >"$tmp/ext.cnf" <<EOF
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash

[apiserver]
basicConstraints = critical,CA:FALSE
keyUsage = $leaf_ku
extendedKeyUsage = serverAuth,clientAuth
authorityKeyIdentifier = keyid
subjectAltName = DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster,DNS:kubernetes.default.svc.cluster.local,DNS:kubernetes.$domain,DNS:localhost,IP:127.0.0.1,IP:$service_ip

[node]
basicConstraints = critical,CA:FALSE
keyUsage = $leaf_ku
extendedKeyUsage = clientAuth,serverAuth
authorityKeyIdentifier = keyid

[etcd]
basicConstraints = critical,CA:FALSE
keyUsage = $leaf_ku
extendedKeyUsage = serverAuth,clientAuth
authorityKeyIdentifier = keyid
subjectAltName = DNS:etcd-0.$domain,DNS:etcd-1.$domain,DNS:etcd-2.$domain,DNS:localhost,IP:127.0.0.1

[etcd-client]
basicConstraints = critical,CA:FALSE
keyUsage = $leaf_ku
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid

[client]
basicConstraints = critical,CA:FALSE
keyUsage = $leaf_ku
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF

# 1. Keys, plaintext on disk.
for stem in ca apiserver node etcd etcd-client controller-manager scheduler bootstrap service-account; do
  genkey "$tmp/$stem-key.pem"
done

# 2. The CA, self-signed.
openssl req -x509 -new -key "$tmp/ca-key.pem" -days 3650 -sha256 \
  -subj "/CN=kube-$cluster-ca" -config "$tmp/ext.cnf" -extensions ca \
  -out "$out/ca.pem" 2>/dev/null

# 3. Each leaf: a CSR, then `openssl x509 -req` signs it with the CA.
sign() { # stem subject [extensions section]
  openssl req -new -key "$tmp/$1-key.pem" -subj "$2" -out "$tmp/$1.csr"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$out/ca.pem" -CAkey "$tmp/ca-key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days 365 -sha256 \
    -extfile "$tmp/ext.cnf" -extensions "${3:-$1}" -out "$out/$1.pem" 2>/dev/null
}
sign apiserver "/CN=kube-$cluster-apiserver"
sign node "/O=system:nodes/CN=kube-$cluster-node"
sign etcd "/CN=kube-$cluster-etcd"
sign etcd-client "/CN=kube-$cluster-apiserver-etcd-client"
sign controller-manager "/CN=system:kube-controller-manager" client
sign scheduler "/CN=system:kube-scheduler" client
sign bootstrap "/O=system:masters/CN=kaws:bootstrap" client
openssl pkey -in "$tmp/service-account-key.pem" -pubout -out "$out/service-account.pub"

# 4. One `aws kms encrypt` per private key.
for stem in ca apiserver node etcd etcd-client controller-manager scheduler bootstrap service-account; do
  aws kms encrypt --key-id "$kms_key" --plaintext "fileb://$tmp/$stem-key.pem" \
    --encryption-context "kaws:cluster=$cluster,kaws:file=$stem-key.pem" \
    --query CiphertextBlob --output text | base64 -d >"$out/$stem-key.pem.encrypted"
done

# 5. The plaintext keys go (the trap removes $tmp).
rm -f "$tmp"/*-key.pem
