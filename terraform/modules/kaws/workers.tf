# Nodes: kubelet, kube-proxy and flannel in an autoscaling group. Each kubelet
# joins with the bootstrap token (decrypted at boot into /run/kaws) and gets a
# certificate of its own; kube-proxy and flannel have their own keys.

resource "aws_launch_template" "worker" {
  name_prefix   = "${var.cluster}-worker-"
  image_id      = local.ami
  instance_type = var.worker_type
  key_name      = var.ssh_key_name

  vpc_security_group_ids = [aws_security_group.worker.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.role["worker"].arn
  }

  user_data = base64encode(local.user_data.worker)

  # Flatcar's root device. Encrypted with the account's default EBS key, and
  # sized for images and logs rather than left at the AMI's default.
  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.worker_disk_size
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  lifecycle {
    precondition {
      condition     = local.release != null
      error_message = local.unpinned_version_error
    }
    precondition {
      condition     = local.user_data_size.worker <= local.user_data_limit
      error_message = "worker user data is ${local.user_data_size.worker} bytes, over the module's limit of ${local.user_data_limit}."
    }
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
  vpc_zone_identifier = local.server_subnet_ids

  # The ingress load balancer's targets (private topology; nlb.tf).
  target_group_arns = [for p in sort(tolist(local.ingress_ports)) : aws_lb_target_group.ingress[p].arn]

  # Servers boot only once their keys and the right to decrypt them exist.
  depends_on = [aws_s3_object.cert, aws_s3_object.encrypted_key, aws_iam_role_policy.role]

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
