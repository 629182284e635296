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

  user_data = base64encode(local.user_data.controller)

  # Flatcar's root device. Encrypted with the account's default EBS key, and
  # sized for images and logs rather than left at the AMI's default.
  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.controller_disk_size
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
      condition     = local.user_data_size.controller <= local.user_data_limit
      error_message = "controller user data is ${local.user_data_size.controller} bytes, over the module's limit of ${local.user_data_limit}."
    }
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
  vpc_zone_identifier = local.server_subnet_ids
  target_group_arns   = [aws_lb_target_group.apiserver.arn]

  # Servers boot only once their keys and the right to decrypt them exist.
  depends_on = [aws_s3_object.cert, aws_s3_object.encrypted_key, aws_iam_role_policy.role]

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
