# Keys stay inside the VPC (private topology). Servers fetch their sealed keys
# from S3 and decrypt them with KMS at the usual regional names
# (https://<bucket>.s3.<region>.amazonaws.com, https://kms.<region>.amazonaws.com):
# the S3 gateway endpoint routes the first through the private route tables,
# and the KMS interface endpoint's private DNS answers the second with
# addresses in the private subnets. Neither request crosses a NAT gateway or
# the internet, and each endpoint's policy lets through only this cluster's
# objects and key. The roles' policies (iam.tf) in turn accept only requests
# that arrive through these endpoints.

locals {
  # registry.k8s.io answers image pulls from AWS addresses with a redirect to
  # its layer bucket in the same region (prod-registry-k8s-io-<region>); that
  # request is routed through the S3 gateway endpoint, so the endpoint must
  # let it through or masters and nodes cannot pull their images. Only
  # GetObject, only on these buckets.
  s3_endpoint_read_buckets = concat(["prod-registry-k8s-io-${local.region}"], var.s3_endpoint_extra_buckets)
}

data "aws_iam_policy_document" "s3_endpoint" {
  count = local.private ? 1 : 0

  statement {
    sid       = "ClusterObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.keys.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  statement {
    sid       = "ImageLayers"
    actions   = ["s3:GetObject"]
    resources = [for b in local.s3_endpoint_read_buckets : "arn:aws:s3:::${b}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  count = local.private ? 1 : 0

  vpc_id            = aws_vpc.network.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  policy            = data.aws_iam_policy_document.s3_endpoint[0].json

  tags = {
    Name = "${var.cluster}-s3"
  }
}

data "aws_iam_policy_document" "kms_endpoint" {
  count = local.private ? 1 : 0

  statement {
    sid       = "ClusterKeyDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [data.aws_kms_key.cluster.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:kaws:cluster"
      values   = [var.cluster]
    }
  }
}

# Servers reach the KMS endpoint's addresses on 443.
resource "aws_security_group" "endpoints" {
  count = local.private ? 1 : 0

  name        = "${var.cluster}-endpoints"
  description = "kaws ${var.cluster} VPC interface endpoints (KMS)"
  vpc_id      = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-endpoints"
  }
}

# etcd, masters and nodes decrypt their keys through the KMS endpoint.
resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  for_each = local.private ? {
    etcd       = aws_security_group.etcd.id
    controller = aws_security_group.controller.id
    worker     = aws_security_group.worker.id
  } : {}

  security_group_id = aws_security_group.endpoints[0].id

  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = each.value
}

resource "aws_vpc_endpoint" "kms" {
  count = local.private ? 1 : 0

  vpc_id              = aws_vpc.network.id
  service_name        = "com.amazonaws.${local.region}.kms"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.kms_endpoint[0].json

  tags = {
    Name = "${var.cluster}-kms"
  }
}
