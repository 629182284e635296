# Bastion: the only server that accepts SSH from outside (var.ssh_cidr). It holds
# no keys and has no instance profile.

resource "aws_instance" "bastion" {
  ami           = local.ami
  instance_type = var.bastion_type
  key_name      = var.ssh_key_name

  subnet_id              = aws_subnet.public[0].id
  vpc_security_group_ids = [aws_security_group.bastion.id]

  user_data_base64 = base64encode(local.user_data.bastion)

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # volume_size is explicit: moto rejects a block device without size or snapshot.
  root_block_device {
    volume_type = "gp3"
    volume_size = 10
    encrypted   = true
  }

  tags = {
    Name = "${var.cluster}-bastion"
  }

  lifecycle {
    precondition {
      condition     = local.user_data_size.bastion <= local.user_data_limit
      error_message = "bastion user data is ${local.user_data_size.bastion} bytes, over the module's limit of ${local.user_data_limit}."
    }

    # Like etcd: no surprise reboot or replacement from a newer AMI or template.
    ignore_changes = [ami, user_data_base64]
  }
}
