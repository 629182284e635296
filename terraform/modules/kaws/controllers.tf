# Masters: kube-apiserver, kube-controller-manager and kube-scheduler in an
# autoscaling group behind the NLB. They keep no state (etcd does), so any
# master can be replaced at any time.

resource "aws_launch_template" "controller" {
  name_prefix   = "${var.cluster}-controller-"
  image_id      = local.ami
  instance_type = var.controller_type
  key_name      = var.ssh_key_name

  vpc_security_group_ids = [aws_security_group.controller.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.role["controller"].arn
  }

  user_data = base64gzip(templatefile("${path.module}/templates/controller.ign.tftpl", {
    cluster            = var.cluster
    decrypt_script     = local.decrypt_script
    kaws_env           = local.kaws_env["controller"]
    keys_unit          = local.keys_unit["controller"]
    kubernetes_version = var.kubernetes_version
    etcd_servers       = join(",", [for fqdn in local.etcd_fqdns : "https://${fqdn}:2379"])
    service_cidr       = var.service_cidr
    pod_cidr           = var.pod_cidr
    api_endpoint       = local.api_endpoint
    kubeconfigs        = local.controller_kubeconfigs
    rbac_files         = local.rbac_files
    rbac_script        = local.rbac_script
  }))

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags = {
      Name = "${var.cluster}-controller"
    }
  }
}

resource "aws_autoscaling_group" "controller" {
  name                = "${var.cluster}-controller"
  min_size            = var.controller_min
  max_size            = var.controller_max
  vpc_zone_identifier = aws_subnet.public[*].id
  target_group_arns   = [aws_lb_target_group.apiserver.arn]

  health_check_type         = "EC2"
  health_check_grace_period = 300

  launch_template {
    id      = aws_launch_template.controller.id
    version = aws_launch_template.controller.latest_version
  }

  tag {
    key                 = "kaws:cluster"
    value               = var.cluster
    propagate_at_launch = true
  }

  lifecycle {
    precondition {
      condition     = var.controller_min >= 1 && var.controller_min <= var.controller_max
      error_message = "controller_min must be between 1 and controller_max."
    }
  }
}
