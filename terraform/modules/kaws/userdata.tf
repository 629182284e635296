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
    controller = "kube-apiserver.service kube-controller-manager.service kube-scheduler.service kaws-rbac.service"
    worker     = "kubelet.service kube-proxy.service flanneld.service"
  }

  keys_unit = {
    for role, before in local.keys_before : role => templatefile("${path.module}/templates/kaws-keys.service.tftpl", {
      before = before
    })
  }

  api_endpoint = "https://kubernetes.${var.domain}"

  # Kubeconfigs name files only: /etc/kaws/<user>.pem (copied by
  # kaws-decrypt-keys) and /run/kaws/<user>-key.pem (decrypted into tmpfs).
  # Masters talk to their own kube-apiserver; nodes go through the NLB.
  controller_kubeconfigs = {
    for user in ["controller-manager", "scheduler", "bootstrap"] : "${user}.kubeconfig" => templatefile("${path.module}/templates/kubeconfig.yaml.tftpl", {
      cluster = var.cluster
      server  = "https://127.0.0.1:443"
      user    = user
    })
  }
  node_kubeconfig = templatefile("${path.module}/templates/kubeconfig.yaml.tftpl", {
    cluster = var.cluster
    server  = local.api_endpoint
    user    = "node"
  })

  # One JSON file per RBAC object, NN_<resource>_<name>.json, as kaws-rbac
  # expects: the file name gives the API path, NN the order.
  rbac_docs = [
    for doc in split("\n---\n", templatefile("${path.module}/templates/rbac.yaml.tftpl", { cluster = var.cluster })) : yamldecode(doc)
  ]
  rbac_files = {
    for i, doc in local.rbac_docs : format("%02d_%ss_%s.json", i, lower(doc.kind), doc.metadata.name) => jsonencode(doc)
  }
  rbac_script = file("${path.module}/templates/kaws-rbac.sh")
  etcd_fqdns  = [for i in range(3) : "etcd-${i}.${var.domain}"]
}
