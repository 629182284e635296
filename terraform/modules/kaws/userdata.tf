# What servers boot with. User data holds only public settings: scripts, unit
# files and where to fetch from. Certificates and key ciphertext stay in S3, so
# rotating or re-encrypting them never changes it.
#
# Ignition reads EC2 user data as plain JSON; it does not un-gzip it. Each role's
# config is therefore gzip'd into a data URL that a small outer config merges
# (ignition.config.merge with compression = "gzip", Ignition spec 3.1 and later),
# which keeps the raw user data of every role far below EC2's 16 KiB.

locals {
  # Raw user data larger than this fails the plan: 2 KiB of headroom under
  # EC2's 16 KiB (16,384 bytes raw, before base64). It was 12 KiB until the
  # refresh timer and the per-node identity pushed the controller to 12.8 KiB.
  user_data_limit = 14336

  # The name a server's region has in endpoints (data.aws_region's name).
  region = data.aws_region.current.name

  # Without a trailing dot, as in every certificate kaws makes.
  domain = trimsuffix(var.domain, ".")

  decrypt_script = file("${path.module}/templates/kaws-decrypt-keys.sh")

  kaws_env = {
    for role, keys in local.role_keys : role => join("\n", [
      "KAWS_CLUSTER=${var.cluster}",
      "KAWS_BUCKET=${local.bucket}",
      "KAWS_REGION=${local.region}",
      "KAWS_CERTS=\"${join(" ", local.role_certs[role])}\"",
      "KAWS_KEYS=\"${join(" ", keys)}\"",
      "",
    ])
  }

  # Units kaws-keys.service must finish before, per role.
  keys_before = {
    etcd       = "etcd-member.service"
    controller = "kube-apiserver.service kube-controller-manager.service kube-scheduler.service kaws-addons.service"
    worker     = "kubelet.service kube-proxy.service flanneld.service"
  }

  # Files and units every server with keys gets.
  common_files = {
    for role in keys(local.role_keys) : role => concat([
      {
        path      = "/opt/kaws/bin/kaws-decrypt-keys"
        mode      = 493
        overwrite = true
        contents  = { source = "data:,${replace(urlencode(local.decrypt_script), "+", "%20")}" }
      },
      {
        # Route 53 records of the etcd members and the API are created after
        # the servers that need them, and a cached "no such name" would hold
        # a first boot up for the zone's negative TTL (up to 15 minutes):
        # every step retries instead, and each retry asks again.
        path      = "/etc/systemd/resolved.conf.d/kaws.conf"
        mode      = 420
        overwrite = true
        contents  = { source = "data:,%5BResolve%5D%0ACache%3Dno-negative%0A" }
      },
      {
        path      = "/etc/kaws/kaws.env"
        mode      = 420
        overwrite = true
        contents  = { source = "data:,${replace(urlencode(local.kaws_env[role]), "+", "%20")}" }
      },
    ], local.refresh_files[role])
  }
  common_units = {
    for role, before in local.keys_before : role => concat(local.update_units, local.refresh_units, [
      {
        name    = "kaws-keys.service"
        enabled = true
        contents = templatefile("${path.module}/templates/kaws-keys.service.tftpl", {
          before = before
        })
      },
    ])
  }

  # Flatcar updates itself, but no server reboots on its own: an uncoordinated
  # reboot could take two etcd members or the only master down at once. The new
  # image waits on the passive partition until the operator's rolling reboot
  # (docs/guides/flatcar-updates.md).
  update_units = [{ name = "locksmithd.service", mask = true }]

  api_endpoint = "https://kubernetes.${local.domain}"

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
  # Issue 12: each worker component its own identity; the kubelet starts from
  # the bootstrap token (a tokenFile in tmpfs) and writes its own kubeconfig.
  worker_kubeconfigs = merge({
    for user in ["kube-proxy", "flannel"] : "${user}.kubeconfig" => templatefile("${path.module}/templates/kubeconfig.yaml.tftpl", {
      cluster = var.cluster
      server  = local.api_endpoint
      user    = user
    })
    }, {
    "kubelet-bootstrap.kubeconfig" = templatefile("${path.module}/templates/kubelet-bootstrap.kubeconfig.tftpl", {
      cluster = var.cluster
      server  = local.api_endpoint
    })
  })

  # Objects kaws-addons applies to the API at every master boot: RBAC, then
  # cluster DNS. Each becomes /etc/kaws/addons/NN_<kind>_<name>.json, and a line
  # "<file> <API path>" of /etc/kaws/addons/index, in order.
  cluster_dns = cidrhost(var.service_cidr, 10)
  addon_docs = [
    for doc in flatten([
      for t in ["rbac.yaml.tftpl", "coredns.yaml.tftpl"] : split("\n---\n", templatefile("${path.module}/templates/${t}", {
        cluster       = var.cluster
        cluster_dns   = local.cluster_dns
        coredns_image = local.images.coredns
      }))
    ]) : yamldecode(doc)
  ]
  addon_plural = {
    ClusterRole        = "clusterroles"
    ClusterRoleBinding = "clusterrolebindings"
    ConfigMap          = "configmaps"
    Deployment         = "deployments"
    Service            = "services"
    ServiceAccount     = "serviceaccounts"
  }
  addons = [
    for i, doc in local.addon_docs : {
      file = format("%02d_%s_%s.json", i, lower(doc.kind), doc.metadata.name)
      json = jsonencode(doc)
      path = join("/", compact([
        length(split("/", doc.apiVersion)) == 1 ? "/api/${doc.apiVersion}" : "/apis/${doc.apiVersion}",
        try("namespaces/${doc.metadata.namespace}", ""),
        local.addon_plural[doc.kind],
        doc.metadata.name,
      ]))
    }
  ]
  addons_index = join("", [for a in local.addons : "${a.file} ${a.path}\n"])

  etcd_fqdns = [for i in range(local.etcd_count) : "etcd-${i}.${local.domain}"]

  # Each role's full Ignition config.
  ignition = {
    bastion = templatefile("${path.module}/templates/bastion.ign.tftpl", {
      cluster      = var.cluster
      update_units = local.update_units
    })
    controller = templatefile("${path.module}/templates/controller.ign.tftpl", {
      common_files     = local.common_files["controller"]
      common_units     = local.common_units["controller"]
      images           = local.images
      etcd_servers     = join(",", [for fqdn in local.etcd_fqdns : "https://${fqdn}:2379"])
      service_cidr     = var.service_cidr
      pod_cidr         = var.pod_cidr
      api_endpoint     = local.api_endpoint
      kubeconfigs      = local.controller_kubeconfigs
      addons           = local.addons
      addons_index     = local.addons_index
      addons_script    = file("${path.module}/templates/kaws-addons.sh")
      scheduler_config = file("${path.module}/templates/kube-scheduler.yaml")
      audit_policy     = file("${path.module}/templates/audit-policy.yaml")
    })
    worker = templatefile("${path.module}/templates/worker.ign.tftpl", {
      cluster      = var.cluster
      common_files = local.common_files["worker"]
      common_units = local.common_units["worker"]
      images       = local.images
      downloads    = local.downloads
      cluster_dns  = local.cluster_dns
      pod_cidr     = var.pod_cidr
      kubeconfigs  = local.worker_kubeconfigs
    })
  }
  etcd_ignition = [
    for i in range(local.etcd_count) : templatefile("${path.module}/templates/etcd.ign.tftpl", {
      cluster         = var.cluster
      common_files    = concat(local.common_files["etcd"], local.refresh_etcd_files[i])
      common_units    = local.common_units["etcd"]
      etcd_image      = local.images.etcd
      etcd_name       = "etcd-${i}"
      etcd_fqdn       = local.etcd_fqdns[i]
      initial_cluster = join(",", [for j, fqdn in local.etcd_fqdns : "etcd-${j}=https://${fqdn}:2380"])
      volume_id       = aws_ebs_volume.etcd[i].id
    })
  ]

  # Raw user data: the outer config, merging the gzip'd full config.
  user_data = {
    for role, config in merge(local.ignition, { for i, c in local.etcd_ignition : "etcd-${i}" => c }) : role => jsonencode({
      ignition = {
        version = "3.3.0"
        config = {
          merge = [{
            source      = "data:;base64,${base64gzip(config)}"
            compression = "gzip"
          }]
        }
      }
    })
  }
}

locals {
  # What the size preconditions read (a condition shows every value it uses).
  user_data_size = { for role, data in local.user_data : role => length(data) }
}

# Renewal on running servers (docs/guides/renew-certificates.md). Every
# server with keys runs kaws-refresh-keys from kaws-refresh.timer: it takes
# the objects `kaws cluster apply` changed after `kaws cluster renew`, and
# restarts only the units that read a changed file; etcd members one at a
# time (kaws-etcd-turn). Nothing here changes when certificates do.
locals {
  # The long-running units that read each certificate or key, per role
  # (directly or through a kubeconfig): a new certificate is one more name
  # here. tests/boot.rs checks this against what the units name.
  refresh_restart = {
    etcd = { "etcd-member.service" = ["etcd-ca.pem", "etcd.pem", "etcd-key.pem"] }
    controller = {
      "kube-apiserver.service" = [
        "client-ca.pem", "apiserver.pem", "apiserver-key.pem", "etcd-ca.pem", "etcd-client.pem",
        "etcd-client-key.pem", "front-proxy-ca.pem", "front-proxy-client.pem",
        "front-proxy-client-key.pem", "secrets-encryption-key.pem", "service-account.pub",
        "service-account-key.pem",
      ]
      "kube-controller-manager.service" = [
        "ca.pem", "controller-manager.pem", "controller-manager-key.pem", "service-account-key.pem",
        "kubelet-signer.pem", "kubelet-signer-key.pem",
      ]
      "kube-scheduler.service" = ["ca.pem", "scheduler.pem", "scheduler-key.pem"]
    }
    worker = {
      "kubelet.service"    = ["ca.pem", "bootstrap-token-key.pem"]
      "kube-proxy.service" = ["ca.pem", "kube-proxy.pem", "kube-proxy-key.pem"]
      "flanneld.service"   = ["ca.pem", "flannel.pem", "flannel-key.pem"]
    }
  }

  refresh_env = {
    for role, units in local.refresh_restart : role => format("KAWS_RESTART=\"%s\"\n", join(" ", [
      for unit, files in units : "${unit}:${join(",", files)}"
    ]))
  }
  refresh_file = {
    for f in ["kaws-refresh-keys", "kaws-etcd-turn"] : f => {
      path      = "/opt/kaws/bin/${f}"
      mode      = 493
      overwrite = true
      contents  = { source = "data:,${replace(urlencode(file("${path.module}/templates/${f}.sh")), "+", "%20")}" }
    }
  }
  # etcd members get theirs below: /etc/kaws/refresh.env differs by member.
  refresh_files = {
    for role, env in local.refresh_env : role => role == "etcd" ? [local.refresh_file["kaws-refresh-keys"]] : [
      local.refresh_file["kaws-refresh-keys"],
      {
        path      = "/etc/kaws/refresh.env"
        mode      = 420
        overwrite = true
        contents  = { source = "data:,${replace(urlencode(env), "+", "%20")}" }
      },
    ]
  }

  # etcd: which member this is, and the others' health, before a restart.
  refresh_etcd_files = [
    for i in range(local.etcd_count) : [
      local.refresh_file["kaws-etcd-turn"],
      {
        path      = "/etc/kaws/refresh.env"
        mode      = 420
        overwrite = true
        contents = { source = "data:,${replace(urlencode(join("\n", [
          trimsuffix(local.refresh_env.etcd, "\n"),
          "KAWS_RESTART_GATE=/opt/kaws/bin/kaws-etcd-turn",
          "KAWS_ETCD_INDEX=${i}",
          "KAWS_ETCD_ENDPOINTS=\"${join(" ", [for fqdn in local.etcd_fqdns : "https://${fqdn}:2379"])}\"",
          "",
        ])), "+", "%20")}" }
      },
    ]
  ]

  refresh_units = [
    {
      name     = "kaws-refresh.service"
      contents = file("${path.module}/templates/kaws-refresh.service")
    },
    {
      name     = "kaws-refresh.timer"
      enabled  = true
      contents = file("${path.module}/templates/kaws-refresh.timer")
    },
  ]
}
