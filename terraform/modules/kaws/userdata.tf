# Pieces of user data shared by the roles. User data holds only public settings:
# the decrypt script, unit files and where to fetch from. Certificates and key
# ciphertext stay in S3, so rotating or re-encrypting them never changes it.

locals {
  decrypt_script = file("${path.module}/templates/kaws-decrypt-keys.sh")

  kaws_env = {
    for role, keys in local.role_keys : role => join("\n", [
      "KAWS_CLUSTER=${var.cluster}",
      "KAWS_BUCKET=${local.bucket}",
      "KAWS_REGION=${data.aws_region.current.name}",
      "KAWS_CERTS=\"${join(" ", local.role_certs[role])}\"",
      "KAWS_KEYS=\"${join(" ", keys)}\"",
      "",
    ])
  }

  # Units kaws-keys.service must finish before, per role.
  keys_before = {
    etcd       = "etcd-member.service"
    controller = "kube-apiserver.service kube-controller-manager.service kube-scheduler.service"
    worker     = "kubelet.service kube-proxy.service flanneld.service"
  }

  keys_unit = {
    for role, before in local.keys_before : role => templatefile("${path.module}/templates/kaws-keys.service.tftpl", {
      before = before
    })
  }

  api_endpoint = "https://kubernetes.${var.domain}"
  etcd_fqdns   = [for i in range(3) : "etcd-${i}.${var.domain}"]
}
