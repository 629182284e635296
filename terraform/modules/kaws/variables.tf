# Inputs. kaws fills these from clusters/<c>/terraform.tfvars.json and the PKI
# files it keeps beside it; only public certificates and KMS ciphertext arrive here.

variable "cluster" {
  type        = string
  description = "Unique cluster name, used in resource names, DNS-safe (e.g. \"prod\")"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.cluster))
    error_message = "cluster must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit."
  }
}

variable "domain" {
  type        = string
  description = "DNS name the cluster lives under (e.g. \"prod.example.com\"); records bastion.<domain>, kubernetes.<domain>, etcd-N.<domain> are created in zone_id"
}

variable "zone_id" {
  type        = string
  description = "Route 53 hosted zone id that domain belongs to"
}

variable "kms_key_id" {
  type        = string
  description = "KMS key that encrypted the cluster's private keys: key id, key ARN, alias/NAME or alias ARN"
}

variable "ssh_key_name" {
  type        = string
  description = "Name of an existing EC2 key pair installed on every server"
}

variable "ssh_cidr" {
  type        = string
  description = "CIDR allowed to reach the bastion on SSH port 22; empty opens SSH to nobody outside the VPC"
  default     = ""

  validation {
    condition     = var.ssh_cidr == "" || can(cidrnetmask(var.ssh_cidr))
    error_message = "ssh_cidr must be empty or an IPv4 CIDR such as 203.0.113.0/24."
  }
}

# No default: an entry point written before topologies existed passes none,
# and must fail loudly rather than silently move every server.
variable "topology" {
  type        = string
  description = "\"private\": servers in private subnets behind NAT, only the bastion and load balancers public, S3 and KMS reached through VPC endpoints; \"public\": every server in a public subnet with a public address (kaws' first layout)"

  validation {
    condition     = contains(["private", "public"], var.topology)
    error_message = "topology must be \"private\" or \"public\"."
  }
}

variable "nat" {
  type        = string
  description = "NAT gateways of the private topology: \"per-zone\" (one per availability zone) or \"single\" (one for all zones: cheaper, but a single point of failure for the servers' outbound traffic); ignored when public"
  default     = "per-zone"

  validation {
    condition     = contains(["per-zone", "single"], var.nat)
    error_message = "nat must be \"per-zone\" or \"single\"."
  }
}

variable "s3_endpoint_extra_buckets" {
  type        = list(string)
  description = "Buckets (besides the cluster's own and registry.k8s.io's regional layer bucket) that servers may read through the S3 gateway endpoint of the private topology, e.g. ECR's prod-<region>-starport-layer-bucket"
  default     = []
}

variable "ami" {
  type        = string
  description = "AMI id for every server; empty means the newest Flatcar Container Linux stable (x86_64, HVM)"
  default     = ""
}

variable "bastion_type" {
  type        = string
  description = "EC2 instance type of the bastion"
  default     = "t3.micro"
}

variable "etcd_type" {
  type        = string
  description = "EC2 instance type of the three etcd servers"
  default     = "t3.small"
}

variable "etcd_disk_size" {
  type        = number
  description = "Size in GiB of each etcd server's data volume"
  default     = 10
}

variable "controller_type" {
  type        = string
  description = "EC2 instance type of the masters (kube-apiserver, controller-manager, scheduler)"
  default     = "t3.medium"
}

variable "controller_min" {
  type        = number
  description = "Minimum number of masters in the autoscaling group"
  default     = 1
}

variable "controller_max" {
  type        = number
  description = "Maximum number of masters in the autoscaling group"
  default     = 3

  validation {
    condition     = var.controller_max >= 1
    error_message = "controller_max must be at least 1."
  }
}

# One worker is enough for a first cluster and keeps its cost low; the group may
# grow to three without a Terraform change (e.g. with `aws autoscaling set-desired-capacity`).
variable "controller_disk_size" {
  type        = number
  description = "Size in GiB of each master's encrypted root volume"
  default     = 30
}

variable "worker_type" {
  type        = string
  description = "EC2 instance type of the nodes"
  default     = "t3.medium"
}

variable "worker_min" {
  type        = number
  description = "Minimum number of nodes in the autoscaling group"
  default     = 1
}

variable "worker_max" {
  type        = number
  description = "Maximum number of nodes in the autoscaling group"
  default     = 3

  validation {
    condition     = var.worker_max >= 1
    error_message = "worker_max must be at least 1."
  }
}

variable "worker_disk_size" {
  type        = number
  description = "Size in GiB of each node's encrypted root volume (images, logs, emptyDir)"
  default     = 40
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes version; one of the releases images.tf pins (kubelet checksum, image digests)"
  default     = "v1.35.4"

  validation {
    condition     = can(regex("^v\\d+\\.\\d+\\.\\d+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like v1.35.4."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the cluster's VPC; a /20 per subnet is carved from it (public: 0-2, private: 8-10)"
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR."
  }
}

variable "service_cidr" {
  type        = string
  description = "CIDR of Kubernetes services; the first address is the kubernetes service, the tenth is cluster DNS"
  default     = "10.3.0.0/24"

  validation {
    condition     = can(cidrnetmask(var.service_cidr))
    error_message = "service_cidr must be an IPv4 CIDR."
  }
}

variable "pod_cidr" {
  type        = string
  description = "CIDR of pod addresses (flannel VXLAN overlay)"
  default     = "10.2.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.pod_cidr))
    error_message = "pod_cidr must be an IPv4 CIDR."
  }
}

# Public PKI material and who may read what: written by kaws from its
# certificate table, so a new certificate needs no change here.

variable "certs" {
  type        = map(string)
  description = "PEM of each public file (certificates, service-account.pub), keyed by file name; stored in the cluster bucket under certs/"
}

variable "role_certs" {
  type        = map(list(string))
  description = "The public files each server role (controller, worker, etcd) fetches, by file name"

  validation {
    condition     = join(",", sort(keys(var.role_certs))) == "controller,etcd,worker"
    error_message = "role_certs must name exactly the roles controller, etcd and worker."
  }
}

variable "role_keys" {
  type        = map(list(string))
  description = "The keys each server role (controller, worker, etcd) may fetch and decrypt, by plaintext file name (the kaws:file of their encryption context)"

  validation {
    condition     = join(",", sort(keys(var.role_keys))) == "controller,etcd,worker"
    error_message = "role_keys must name exactly the roles controller, etcd and worker."
  }

  validation {
    # ca-key.pem, etcd-ca-key.pem, front-proxy-ca-key.pem: every CA's key.
    condition     = alltrue([for k in flatten(values(var.role_keys)) : !endswith(k, "ca-key.pem")])
    error_message = "No role may decrypt a CA's key (ca-key.pem, etcd-ca-key.pem, front-proxy-ca-key.pem): CA keys stay with the operator and never reach a server."
  }
}

variable "etcd_count" {
  type        = number
  description = "Number of etcd servers, named etcd-0 to etcd-<n-1>: the etcd certificate kaws makes holds exactly these names"

  validation {
    condition     = var.etcd_count >= 1 && var.etcd_count % 2 == 1
    error_message = "etcd_count must be an odd number of at least 1."
  }
}

variable "encrypted_keys" {
  type        = map(string)
  description = "Base64 of the raw KMS CiphertextBlob of each private key, keyed by plaintext file name (secrets-encryption-key.pem is the apiserver's EncryptionConfiguration, sealed whole)"

  validation {
    # ca-key.pem, etcd-ca-key.pem, front-proxy-ca-key.pem: every CA's key.
    condition     = alltrue([for k in keys(var.encrypted_keys) : !endswith(k, "ca-key.pem")])
    error_message = "encrypted_keys must never hold a CA's key (ca-key.pem, etcd-ca-key.pem, front-proxy-ca-key.pem): CA keys stay with the operator and never reach a server."
  }

  validation {
    condition     = length(setsubtract(flatten(values(var.role_keys)), keys(var.encrypted_keys))) == 0
    error_message = "encrypted_keys must hold every key role_keys names."
  }

  validation {
    condition     = alltrue([for v in values(var.encrypted_keys) : can(regex("^[A-Za-z0-9+/]+={0,2}$", v))])
    error_message = "Each encrypted_keys value must be base64 of a KMS CiphertextBlob (e.g. filebase64(\"apiserver-key.pem.encrypted\"))."
  }
}
