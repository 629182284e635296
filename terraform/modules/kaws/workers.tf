# Nodes: kubelet, kube-proxy and flannel in an autoscaling group. They share one
# node certificate; its key is decrypted at boot into /run/kaws/node-key.pem.

locals {
  cni_version         = "v1.6.2"
  flannel_cni_version = "v1.6.2-flannel1"
  flannel_image       = "ghcr.io/flannel-io/flannel:v0.26.7"
}

resource "aws_launch_template" "worker" {
  name_prefix   = "${var.cluster}-worker-"
  image_id      = local.ami
  instance_type = var.worker_type
  key_name      = var.ssh_key_name

  vpc_security_group_ids = [aws_security_group.worker.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.role["worker"].arn
  }

  user_data = base64gzip(templatefile("${path.module}/templates/worker.ign.tftpl", {
    cluster             = var.cluster
    decrypt_script      = local.decrypt_script
    kaws_env            = local.kaws_env["worker"]
    keys_unit           = local.keys_unit["worker"]
    kubernetes_version  = var.kubernetes_version
    api_endpoint        = local.api_endpoint
    cluster_dns         = cidrhost(var.service_cidr, 10)
    pod_cidr            = var.pod_cidr
    cni_version         = local.cni_version
    flannel_cni_version = local.flannel_cni_version
    flannel_image       = local.flannel_image
    node_kubeconfig     = local.node_kubeconfig
  }))

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags = {
      Name = "${var.cluster}-worker"
    }
  }
}

resource "aws_autoscaling_group" "worker" {
  name                = "${var.cluster}-worker"
  min_size            = var.worker_min
  max_size            = var.worker_max
  vpc_zone_identifier = aws_subnet.public[*].id

  health_check_type         = "EC2"
  health_check_grace_period = 300

  launch_template {
    id      = aws_launch_template.worker.id
    version = aws_launch_template.worker.latest_version
  }

  tag {
    key                 = "kaws:cluster"
    value               = var.cluster
    propagate_at_launch = true
  }

  lifecycle {
    precondition {
      condition     = var.worker_min >= 0 && var.worker_min <= var.worker_max
      error_message = "worker_min must be between 0 and worker_max."
    }
  }
}
