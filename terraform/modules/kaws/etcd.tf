# etcd: three servers with a static bootstrap. Each member is named etcd-N and
# advertised as etcd-N.<domain> (Route 53 A record to its private address), so
# the initial cluster is known before any server exists. Data lives on its own
# EBS volume; re-encrypting keys touches only S3, so these are never replaced by it.

locals {
  # kaws' certificate table holds the one count: the etcd certificate names
  # exactly these servers.
  etcd_count = var.etcd_count
}

resource "aws_ebs_volume" "etcd" {
  count = local.etcd_count

  availability_zone = local.zones[count.index % length(local.zones)]
  size              = var.etcd_disk_size
  type              = "gp3"
  encrypted         = true

  tags = {
    Name = "${var.cluster}-etcd-${count.index}-data"
  }
}

resource "aws_instance" "etcd" {
  count = local.etcd_count

  ami           = local.ami
  instance_type = var.etcd_type
  key_name      = var.ssh_key_name

  subnet_id              = local.server_subnet_ids[count.index % length(local.server_subnet_ids)]
  vpc_security_group_ids = [aws_security_group.etcd.id]
  iam_instance_profile   = aws_iam_instance_profile.role["etcd"].name

  user_data_base64 = base64encode(local.user_data["etcd-${count.index}"])

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # volume_size is explicit: moto rejects a block device without size or snapshot.
  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
  }

  tags = {
    Name = "${var.cluster}-etcd-${count.index}"
  }

  # Its keys and the right to decrypt them exist before it boots.
  depends_on = [aws_s3_object.cert, aws_s3_object.encrypted_key, aws_iam_role_policy.role]

  lifecycle {
    precondition {
      condition     = local.user_data_size["etcd-${count.index}"] <= local.user_data_limit
      error_message = "etcd user data is ${local.user_data_size["etcd-${count.index}"]} bytes, over the module's limit of ${local.user_data_limit}."
    }

    # A newer Flatcar AMI must not replace etcd members (Flatcar updates itself),
    # and a changed template must not stop all three members at once to rewrite
    # user data (quorum loss). Roll such changes one member at a time with
    # `terraform apply -replace='module.kaws.aws_instance.etcd[N]'`.
    ignore_changes = [ami, user_data_base64]
  }
}

resource "aws_volume_attachment" "etcd" {
  count = local.etcd_count

  device_name = "/dev/xvdf"
  volume_id   = aws_ebs_volume.etcd[count.index].id
  instance_id = aws_instance.etcd[count.index].id
}
