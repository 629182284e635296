# Network load balancer in front of the masters' kube-apiserver on 443. TCP
# passthrough: TLS ends at kube-apiserver, which checks client certificates, and
# the NLB preserves client addresses (hence 443 open to the world on masters).

locals {
  # Load balancer and target group names: at most 32 characters, and not
  # ending in "-" (which AWS refuses) when the cluster name is cut.
  nlb_name = trimsuffix(substr("${var.cluster}-apiserver", 0, 32), "-")
}

resource "aws_lb" "apiserver" {
  name               = local.nlb_name
  load_balancer_type = "network"
  internal           = false
  subnets            = aws_subnet.public[*].id

  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "apiserver" {
  name        = local.nlb_name
  vpc_id      = aws_vpc.network.id
  target_type = "instance"
  protocol    = "TCP"
  port        = 443

  health_check {
    protocol            = "TCP"
    port                = 443
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = 10
  }
}

resource "aws_lb_listener" "apiserver" {
  load_balancer_arn = aws_lb.apiserver.arn
  protocol          = "TCP"
  port              = 443

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.apiserver.arn
  }
}

# Ingress (private topology): nodes have no public address, so a second
# internet-facing NLB carries 80 and 443 to them, TCP passthrough to whatever
# ingress controller listens there. Its targets are the nodes' Auto Scaling
# group (workers.tf), so nodes join and leave it on their own. Like the API's,
# it preserves client addresses: ingress controllers see who is calling.

locals {
  # At most 32 characters and unique per account and region: the cluster
  # name, cut and followed by a hash of it when the whole would not fit.
  ingress_names = {
    for k in ["ingress", "ingress-80", "ingress-443"] : k => (
      length("${var.cluster}-${k}") <= 32
      ? "${var.cluster}-${k}"
      : "${trimsuffix(substr(var.cluster, 0, 22 - length(k)), "-")}-${substr(sha256(var.cluster), 0, 8)}-${k}"
    )
  }

  ingress_ports = local.private ? toset(["80", "443"]) : toset([])
}

resource "aws_lb" "ingress" {
  count = local.private ? 1 : 0

  name               = local.ingress_names["ingress"]
  load_balancer_type = "network"
  internal           = false
  subnets            = aws_subnet.public[*].id

  enable_cross_zone_load_balancing = true
}

resource "aws_lb_target_group" "ingress" {
  for_each = local.ingress_ports

  name        = local.ingress_names["ingress-${each.key}"]
  vpc_id      = aws_vpc.network.id
  target_type = "instance"
  protocol    = "TCP"
  port        = tonumber(each.key)

  health_check {
    protocol            = "TCP"
    port                = each.key
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = 10
  }
}

resource "aws_lb_listener" "ingress" {
  for_each = local.ingress_ports

  load_balancer_arn = aws_lb.ingress[0].arn
  protocol          = "TCP"
  port              = tonumber(each.key)

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ingress[each.key].arn
  }
}
