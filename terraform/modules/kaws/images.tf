# Everything a server downloads at boot, in one place, each pinned: container
# images by digest (docker refuses a pulled image whose digest differs) and files
# by a SHA-256 written here, never one fetched from the same origin as the file.
# A release that is not in this table cannot be deployed: add its pins first.
#
# Sources of every pin (checked when it was added; re-check when bumping):
# - kubelet and CNI plugin checksums: kubernetes-sigs/kubespray
#   roles/kubespray_defaults/vars/main/checksums.yml (kubelet_checksums,
#   cni_binary_checksums), which records the checksums upstream publishes;
# - image digests: the multi-arch index digests as promoted to registry.k8s.io
#   (kubernetes/k8s.io registry.k8s.io/images/*/images.yaml) and ghcr.io,
#   as pinned by digest in public deployments.
# tests/fixtures/upstream/ holds the flags and entrypoints of these versions.

locals {
  kubernetes_releases = {
    "v1.35.4" = {
      kubelet_sha256          = "983a6ba5a49823dcdd745c674e5e2416377dd27d6ad1b42d2befa0fb961a19f6"
      kube_apiserver          = "sha256:06b4bb208634a107ab9e6c50cdb9df178d05166a700c0cc448d59522091074b5"
      kube_controller_manager = "sha256:7b036c805d57f203e9efaf43672cff6019b9083a9c0eb107ea8500eace29d8fd"
      kube_scheduler          = "sha256:9054fecb4fa04cc63aec47b0913c8deb3487d414190cd15211f864cfe0d0b4d6"
      kube_proxy              = "sha256:c5daa23c72474e5e4062c320177d3b485fd42e7010f052bc80d657c4c00a0672"
    }
  }
  release = lookup(local.kubernetes_releases, var.kubernetes_version, null)

  images = {
    kube_apiserver          = "registry.k8s.io/kube-apiserver:${var.kubernetes_version}@${try(local.release.kube_apiserver, "")}"
    kube_controller_manager = "registry.k8s.io/kube-controller-manager:${var.kubernetes_version}@${try(local.release.kube_controller_manager, "")}"
    kube_scheduler          = "registry.k8s.io/kube-scheduler:${var.kubernetes_version}@${try(local.release.kube_scheduler, "")}"
    kube_proxy              = "registry.k8s.io/kube-proxy:${var.kubernetes_version}@${try(local.release.kube_proxy, "")}"
    etcd                    = "registry.k8s.io/etcd:v3.6.13@sha256:24fc96ede8e787eb769e771d1245ddb2333301697a8b571e20415a0caccc375e"
    coredns                 = "registry.k8s.io/coredns/coredns:v1.13.1@sha256:9b9128672209474da07c91439bf15ed704ae05ad918dd6454e5b6ae14e35fee6"
    flannel                 = "ghcr.io/flannel-io/flannel:v0.27.4@sha256:2ff3c5cb44d0e27b09f27816372084c98fa12486518ca95cb4a970f4a1a464c4"
    flannel_cni             = "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel1@sha256:7c3377e977b4b77b8efdad96e207ebee371537d6dcd7b9c40853cf0c0f0aade3"
  }

  downloads = {
    kubelet = {
      url    = "https://dl.k8s.io/release/${var.kubernetes_version}/bin/linux/amd64/kubelet"
      sha256 = try(local.release.kubelet_sha256, "")
    }
    cni_plugins = {
      url    = "https://github.com/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-amd64-v1.9.1.tgz"
      sha256 = "b98f74a0f8522f0a83867178729c1aa70f2158f90c45a2ca8fa791db1c76b303"
    }
  }

  unpinned_version_error = "kubernetes_version ${var.kubernetes_version} has no pinned checksums and digests in this module (images.tf has: ${join(", ", keys(local.kubernetes_releases))}); choose one of those, or add the release's pins to images.tf."
}
