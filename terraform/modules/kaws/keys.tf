# Key distribution. One bucket per cluster holds the public certificates and the
# KMS ciphertext of each private key; servers fetch their own share at boot and
# decrypt it into tmpfs. `kaws cluster reencrypt` therefore changes only the
# objects under keys/, never user data, so no server is replaced.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  # Globally unique but stable: cluster name plus a hash of where it lives.
  bucket = "kaws-${substr(var.cluster, 0, 40)}-${substr(sha256("${var.cluster}.${var.domain}.${data.aws_caller_identity.current.account_id}"), 0, 12)}"

  # Which role may read and decrypt which file: kaws writes both maps from
  # its certificate table. Nothing ever lists a CA's key (variables.tf
  # refuses one), and etcd needs only its own CA: it trusts nothing the
  # cluster CA signed.
  role_keys = var.role_keys

  # kube-apiserver's --client-ca-file: the cluster CA and the kubelet signer,
  # which signs the kubelets' own certificates (they send no chain). A bundle
  # the module makes, not a row of kaws' table: only the masters fetch it.
  client_ca = "${trimspace(var.certs["ca.pem"])}\n${trimspace(var.certs["kubelet-signer.pem"])}\n"
  certs     = merge(var.certs, { "client-ca.pem" = local.client_ca })
  role_certs = merge(var.role_certs, {
    controller = concat(var.role_certs["controller"], ["client-ca.pem"])
  })
}

resource "aws_s3_bucket" "keys" {
  bucket = local.bucket

  # The bucket holds only copies of what kaws keeps in clusters/<c>/.
  force_destroy = true

  tags = {
    Name = "${var.cluster}-keys"
  }
}

resource "aws_s3_bucket_public_access_block" "keys" {
  bucket = aws_s3_bucket.keys.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_object" "cert" {
  # Public material, stored as certs/<name> and fetched into /etc/kaws/<name>.
  for_each = local.certs

  bucket       = aws_s3_bucket.keys.id
  key          = "certs/${each.key}"
  content      = each.value
  content_type = "application/x-pem-file"
}

# Ciphertext only: the plaintext never passes through Terraform.
resource "aws_s3_object" "encrypted_key" {
  for_each = var.encrypted_keys

  bucket         = aws_s3_bucket.keys.id
  key            = "keys/${each.key}.encrypted"
  content_base64 = each.value
  content_type   = "application/octet-stream"
}
