#!/bin/bash
# kaws-decrypt-keys: fetch this server's certificates and encrypted private keys
# from the cluster bucket, and decrypt the keys with KMS into tmpfs.
#
# Runs at every boot from kaws-keys.service, before any component. Settings come
# from the environment (/etc/kaws/kaws.env on servers):
#   KAWS_CLUSTER   cluster name, bound into the KMS encryption context
#   KAWS_BUCKET    S3 bucket holding certs/<name> and keys/<name>.encrypted
#   KAWS_REGION    AWS region of the bucket and the KMS key
#   KAWS_CERTS     space-separated certificate names, copied to KAWS_CERT_DIR
#   KAWS_KEYS      space-separated key names, decrypted into KAWS_KEY_DIR
#   KAWS_CERT_DIR  default /etc/kaws
#   KAWS_KEY_DIR   default /run/kaws (tmpfs, 0700; kaws-keys.service mounts it)
#   KAWS_AWS       command that runs the AWS CLI; default runs the amazon/aws-cli
#                  image on the host network (IMDSv2 hop limit 1 needs host network)
set -euo pipefail
umask 077

: "${KAWS_CLUSTER:?set KAWS_CLUSTER}" "${KAWS_BUCKET:?set KAWS_BUCKET}" "${KAWS_REGION:?set KAWS_REGION}"
cert_dir=${KAWS_CERT_DIR:-/etc/kaws}
key_dir=${KAWS_KEY_DIR:-/run/kaws}
aws_image=${KAWS_AWS_IMAGE:-docker.io/amazon/aws-cli:2.27.22}
aws_cmd=${KAWS_AWS:-"docker run --rm --network host -v $cert_dir:$cert_dir -v $key_dir:$key_dir $aws_image"}

# Certificates are public; keys are for root only.
mkdir -p -m 0755 "$cert_dir"
mkdir -p -m 0700 "$key_dir"
chmod 0700 "$key_dir"

aws_cli() {
  # shellcheck disable=SC2086 # aws_cmd is a command line on purpose
  $aws_cmd --region "$KAWS_REGION" "$@"
}

for name in ${KAWS_CERTS:-}; do
  aws_cli s3 cp --only-show-errors "s3://$KAWS_BUCKET/certs/$name" "$cert_dir/$name.tmp"
  chmod 0644 "$cert_dir/$name.tmp"
  mv -f "$cert_dir/$name.tmp" "$cert_dir/$name"
done

for name in ${KAWS_KEYS:-}; do
  blob="$key_dir/$name.encrypted"
  aws_cli s3 cp --only-show-errors "s3://$KAWS_BUCKET/keys/$name.encrypted" "$blob"
  # The encryption context must match the one kaws encrypted with; IAM only
  # lets this server's role decrypt its own file names.
  aws_cli kms decrypt \
    --ciphertext-blob "fileb://$blob" \
    --encryption-context "kaws:cluster=$KAWS_CLUSTER,kaws:file=$name" \
    --query Plaintext --output text | base64 -d > "$key_dir/$name.tmp"
  chmod 0600 "$key_dir/$name.tmp"
  mv -f "$key_dir/$name.tmp" "$key_dir/$name"
  rm -f "$blob"
done
