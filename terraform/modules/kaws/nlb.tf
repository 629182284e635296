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
