# Network: one VPC per cluster with public subnets in up to three availability
# zones. Servers get public addresses from map_public_ip_on_launch, never from
# per-instance settings, so they reach S3, KMS and image registries without NAT.

data "aws_availability_zones" "all" {
  state = "available"
}

locals {
  # At least two zones (the NLB and the etcd spread need them), at most three.
  zones = slice(data.aws_availability_zones.all.names, 0, min(3, length(data.aws_availability_zones.all.names)))
}

resource "aws_vpc" "network" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = var.cluster
  }
}

resource "aws_internet_gateway" "gateway" {
  vpc_id = aws_vpc.network.id

  tags = {
    Name = var.cluster
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-public"
  }
}

resource "aws_route" "egress_ipv4" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.gateway.id
}

resource "aws_subnet" "public" {
  count = length(local.zones)

  vpc_id                  = aws_vpc.network.id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = true

  tags = {
    Name = "${var.cluster}-public-${count.index}"
  }

  lifecycle {
    precondition {
      condition     = length(local.zones) >= 2
      error_message = "The region must offer at least two available zones."
    }
  }
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  route_table_id = aws_route_table.public.id
  subnet_id      = aws_subnet.public[count.index].id
}
