# Instance identities. Each role may read only its own objects in the cluster
# bucket and decrypt only its own keys: kms:Decrypt is limited by encryption
# context to kaws:cluster = var.cluster and kaws:file in the role's key list.
# No role lists ca-key.pem, so no server can ever decrypt the CA key.

locals {
  # IAM role and instance profile names: "<cluster>-<role>" when it fits IAM's
  # 64 characters, else the cluster name cut and a hash of it, so that long
  # cluster names (up to kaws' 63) neither fail nor collide.
  iam_names = {
    for role in keys(local.role_keys) : role => (
      length("${var.cluster}-${role}") <= 64
      ? "${var.cluster}-${role}"
      : "${substr(var.cluster, 0, 42)}-${substr(sha256(var.cluster), 0, 8)}-${role}"
    )
  }
}

data "aws_kms_key" "cluster" {
  key_id = var.kms_key_id
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "role" {
  for_each = local.role_keys

  statement {
    sid       = "DecryptOwnKeys"
    actions   = ["kms:Decrypt"]
    resources = [data.aws_kms_key.cluster.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:kaws:cluster"
      values   = [var.cluster]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:kaws:file"
      values   = each.value
    }

    # Private topology: only through the cluster's KMS endpoint, so stolen
    # instance credentials decrypt nothing outside the VPC.
    dynamic "condition" {
      for_each = aws_vpc_endpoint.kms[*].id
      content {
        test     = "StringEquals"
        variable = "aws:SourceVpce"
        values   = [condition.value]
      }
    }
  }

  statement {
    sid     = "ReadOwnObjects"
    actions = ["s3:GetObject"]
    resources = concat(
      [for f in local.role_certs[each.key] : "${aws_s3_bucket.keys.arn}/certs/${f}"],
      [for f in each.value : "${aws_s3_bucket.keys.arn}/keys/${f}.encrypted"],
    )

    # Private topology: only through the cluster's S3 gateway endpoint.
    dynamic "condition" {
      for_each = aws_vpc_endpoint.s3[*].id
      content {
        test     = "StringEquals"
        variable = "aws:SourceVpce"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "role" {
  for_each = local.role_keys

  name               = local.iam_names[each.key]
  description        = "kaws ${var.cluster} ${each.key} servers"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "role" {
  for_each = local.role_keys

  name   = "kaws-keys"
  role   = aws_iam_role.role[each.key].id
  policy = data.aws_iam_policy_document.role[each.key].json
}

resource "aws_iam_instance_profile" "role" {
  for_each = local.role_keys

  name = local.iam_names[each.key]
  role = aws_iam_role.role[each.key].name
}

# The bastion gets no instance profile: it holds no keys and needs no AWS API.
