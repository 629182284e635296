# Network: one VPC per cluster, a public subnet in each of up to three
# availability zones and, in the private topology, a private subnet beside
# each. Public subnets hold what must face the internet: the bastion, the NAT
# gateways and the load balancers (and, in the public topology, every server).
# Private subnets hold etcd, masters and nodes, with no public address: they go
# out through their zone's NAT gateway, and to S3 and KMS through VPC
# endpoints (endpoints.tf). Instances get public addresses only from
# map_public_ip_on_launch, never from per-instance settings.

data "aws_availability_zones" "all" {
  state = "available"
}

locals {
  # At least two zones (the NLB and the etcd spread need them), at most three.
  zones = slice(data.aws_availability_zones.all.names, 0, min(3, length(data.aws_availability_zones.all.names)))

  private = var.topology == "private"

  # Where etcd, masters and nodes live, one subnet per zone.
  server_subnet_ids = local.private ? aws_subnet.private[*].id : aws_subnet.public[*].id

  # One NAT gateway per zone, or one for all (var.nat = "single").
  nat_count = local.private ? (var.nat == "single" ? 1 : length(local.zones)) : 0
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

# Private topology: etcd, masters and nodes. No public addresses here.
resource "aws_subnet" "private" {
  count = local.private ? length(local.zones) : 0

  vpc_id                  = aws_vpc.network.id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, 8 + count.index)
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.cluster}-private-${count.index}"
  }
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"

  tags = {
    Name = "${var.cluster}-nat-${count.index}"
  }

  # An address is only usable once the VPC has its internet gateway.
  depends_on = [aws_internet_gateway.gateway]
}

resource "aws_nat_gateway" "nat" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = {
    Name = "${var.cluster}-nat-${count.index}"
  }

  depends_on = [aws_internet_gateway.gateway]
}

# One route table per private subnet, so each zone leaves through its own NAT
# gateway and loses only its own outbound path if that zone fails.
resource "aws_route_table" "private" {
  count = length(aws_subnet.private)

  vpc_id = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-private-${count.index}"
  }
}

resource "aws_route" "private_egress_ipv4" {
  count = length(aws_route_table.private)

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.nat[count.index % local.nat_count].id
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  route_table_id = aws_route_table.private[count.index].id
  subnet_id      = aws_subnet.private[count.index].id
}
