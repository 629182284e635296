# Key distribution. One bucket per cluster holds the public certificates and the
# KMS ciphertext of each private key; servers fetch their own share at boot and
# decrypt it into tmpfs. `kaws cluster reencrypt` therefore changes only the
# objects under keys/, never user data, so no server is replaced.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  # Globally unique but stable: cluster name plus a hash of where it lives.
  bucket = "kaws-${substr(var.cluster, 0, 40)}-${substr(sha256("${var.cluster}.${var.domain}.${data.aws_caller_identity.current.account_id}"), 0, 12)}"

  # Public material, stored as certs/<name> and fetched into /etc/kaws/<name>.
  certs = {
    "ca.pem"                 = var.ca_cert
    "etcd-ca.pem"            = var.etcd_ca_cert
    "front-proxy-ca.pem"     = var.front_proxy_ca_cert
    "front-proxy-client.pem" = var.front_proxy_client_cert
    "apiserver.pem"          = var.apiserver_cert
    "kubelet-signer.pem"     = var.kubelet_signer_cert
    "kube-proxy.pem"         = var.kube_proxy_cert
    "flannel.pem"            = var.flannel_cert
    # kube-apiserver's --client-ca-file: the cluster CA and the kubelet
    # signer, which signs the kubelets' certificates (they send no chain).
    "client-ca.pem"          = "${trimspace(var.ca_cert)}\n${trimspace(var.kubelet_signer_cert)}\n"
    "etcd.pem"               = var.etcd_cert
    "etcd-client.pem"        = var.etcd_client_cert
    "controller-manager.pem" = var.controller_manager_cert
    "scheduler.pem"          = var.scheduler_cert
    "bootstrap.pem"          = var.bootstrap_cert
    "service-account.pub"    = var.service_account_pub
  }

  # Which role may read and decrypt which file. Nothing ever lists a CA's key.
  # etcd needs only its own CA: it trusts nothing the cluster CA signed.
  role_certs = {
    etcd = ["etcd-ca.pem", "etcd.pem"]
    controller = [
      "ca.pem", "etcd-ca.pem", "front-proxy-ca.pem", "front-proxy-client.pem",
      "apiserver.pem", "etcd-client.pem", "service-account.pub",
      "controller-manager.pem", "scheduler.pem", "bootstrap.pem",
      "kubelet-signer.pem", "client-ca.pem",
    ]
    worker = ["ca.pem", "kube-proxy.pem", "flannel.pem"]
  }
  role_keys = {
    etcd = ["etcd-key.pem"]
    controller = [
      "apiserver-key.pem", "service-account-key.pem", "etcd-client-key.pem",
      "controller-manager-key.pem", "scheduler-key.pem", "bootstrap-key.pem",
      "front-proxy-client-key.pem",
      # The EncryptionConfiguration with its secretbox keys, not a key pair.
      "secrets-encryption-key.pem",
      # Issue 12: kubelets' client CSRs; the token becomes its kube-system Secret.
      "kubelet-signer-key.pem", "bootstrap-token-key.pem",
    ]
    # Issue 12: a worker holds no node identity, only what asks for one.
    worker = ["bootstrap-token-key.pem", "kube-proxy-key.pem", "flannel-key.pem"]
  }
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
