#!/bin/bash
# kaws-decrypt-keys: fetch this server's certificates and encrypted private keys
# from the cluster bucket, and decrypt the keys with KMS into tmpfs.
#
# Runs at every boot from kaws-keys.service, before any component. It needs no
# container and no AWS CLI: curl signs each request (SigV4) with the instance
# role's credentials from IMDSv2, so the plaintext passes only through pipes
# between curl, sed and base64 and lands in tmpfs; no image, log or disk sees it.
#
# A failure (S3, KMS or IMDS not reachable yet, IAM not propagated yet) is
# retried with backoff until it succeeds, so the components that wait for this
# step start as soon as it does. It fails closed: a key is written whole
# (temporary name, then rename) or not at all.
#
# Settings come from the environment (/etc/kaws/kaws.env on servers):
#   KAWS_CLUSTER       cluster name, bound into the KMS encryption context
#   KAWS_BUCKET        S3 bucket holding certs/<name> and keys/<name>.encrypted
#   KAWS_REGION        AWS region of the bucket and the KMS key
#   KAWS_CERTS         space-separated certificate names, copied to KAWS_CERT_DIR
#   KAWS_KEYS          space-separated key names, decrypted into KAWS_KEY_DIR
#   KAWS_CERT_DIR      default /etc/kaws
#   KAWS_KEY_DIR       default /run/kaws (tmpfs, 0700; kaws-keys.service mounts it)
#   KAWS_S3_ENDPOINT   default https://<bucket>.s3.<region>.amazonaws.com
#   KAWS_KMS_ENDPOINT  default https://kms.<region>.amazonaws.com
#   KAWS_IMDS          default http://169.254.169.254
#   KAWS_RETRY_MAX     longest pause between attempts, seconds (default 30)
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, when set,
# are used instead of the instance role (tests against an emulator).
set -euo pipefail
umask 077

: "${KAWS_CLUSTER:?set KAWS_CLUSTER}" "${KAWS_BUCKET:?set KAWS_BUCKET}" "${KAWS_REGION:?set KAWS_REGION}"
cert_dir=${KAWS_CERT_DIR:-/etc/kaws}
key_dir=${KAWS_KEY_DIR:-/run/kaws}
s3=${KAWS_S3_ENDPOINT:-https://$KAWS_BUCKET.s3.$KAWS_REGION.amazonaws.com}
kms=${KAWS_KMS_ENDPOINT:-https://kms.$KAWS_REGION.amazonaws.com}
imds=${KAWS_IMDS:-http://169.254.169.254}
retry_max=${KAWS_RETRY_MAX:-30}

log() { echo "kaws-decrypt-keys: $*" >&2; }

# retry WHAT COMMAND...: run COMMAND until it succeeds, pausing 1, 2, 4 ... up
# to retry_max seconds between attempts.
retry() {
  local what=$1 pause=1
  shift
  until "$@"; do
    log "$what failed; trying again in ${pause}s"
    sleep "$pause"
    pause=$((pause * 2 > retry_max ? retry_max : pause * 2))
  done
}

# json_string NAME: the value of the JSON string field NAME on stdin. The
# fields read here (credentials, base64) hold no quotes or escapes but "\/".
json_string() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | sed 's#\\/#/#g'
}

# Fresh credentials for each request: those of the instance role, from IMDSv2.
access_key='' secret_key='' session_token=''
credentials() {
  if [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
    access_key=$AWS_ACCESS_KEY_ID secret_key=${AWS_SECRET_ACCESS_KEY:?} session_token=${AWS_SESSION_TOKEN:-}
    return 0
  fi
  local token role doc
  token=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/latest/api/token") || return 1
  role=$(curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/iam/security-credentials/") || return 1
  doc=$(curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/iam/security-credentials/${role%%[[:space:]]*}") || return 1
  access_key=$(json_string AccessKeyId <<<"$doc")
  secret_key=$(json_string SecretAccessKey <<<"$doc")
  session_token=$(json_string Token <<<"$doc")
  [ -n "$access_key" ] && [ -n "$secret_key" ]
}

# aws_curl SERVICE CURL-ARGS...: one request signed with SigV4. The secret key
# and session token go to curl on stdin, never on its command line.
aws_curl() {
  local service=$1
  shift
  credentials || return 1
  {
    printf 'user = "%s:%s"\n' "$access_key" "$secret_key"
    if [ -n "$session_token" ]; then
      printf 'header = "x-amz-security-token: %s"\n' "$session_token"
    fi
  } | curl -fsS --max-time 30 --config - --aws-sigv4 "aws:amz:$KAWS_REGION:$service" "$@"
}

fetch_cert() { # name
  local tmp="$cert_dir/.$1.tmp"
  aws_curl s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o "$tmp" "$s3/certs/$1" &&
    [ -s "$tmp" ] && chmod 0644 "$tmp" && mv -f "$tmp" "$cert_dir/$1"
}

decrypt_key() { # name
  local tmp="$key_dir/.$1.tmp" blob
  blob=$(aws_curl s3 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$s3/keys/$1.encrypted" | base64 -w0) &&
    [ -n "$blob" ] || return 1
  # The encryption context must match the one kaws encrypted with; IAM lets
  # this server's role decrypt only its own file names.
  if aws_curl kms -X POST \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Target: TrentService.Decrypt' \
    --data-binary "{\"CiphertextBlob\":\"$blob\",\"EncryptionContext\":{\"kaws:cluster\":\"$KAWS_CLUSTER\",\"kaws:file\":\"$1\"}}" \
    "$kms/" | json_string Plaintext | base64 -d >"$tmp" &&
    # Every secret is PEM-framed but the bootstrap token, <id>.<secret>.
    [ -s "$tmp" ] && { grep -q -- '-----BEGIN' "$tmp" || [ "$1" = bootstrap-token-key.pem ]; }; then
    chmod 0600 "$tmp" && mv -f "$tmp" "$key_dir/$1"
  else
    rm -f "$tmp"
    return 1
  fi
}

# kaws-refresh-keys sources this file for its settings and functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

# Certificates are public; keys are for root only.
mkdir -p "$cert_dir" "$key_dir"
chmod 0755 "$cert_dir"
chmod 0700 "$key_dir"

for name in ${KAWS_CERTS:-}; do
  retry "fetching certs/$name" fetch_cert "$name"
done
for name in ${KAWS_KEYS:-}; do
  retry "decrypting keys/$name.encrypted" decrypt_key "$name"
done
log "$(wc -w <<<"${KAWS_CERTS:-}") certificates and $(wc -w <<<"${KAWS_KEYS:-}") keys in place"
