# DNS in var.zone_id: the API name aliases the NLB, the bastion has its public
# address, and each etcd member its private one (etcd TLS names and the static
# initial cluster use these names, like typhoon).

resource "aws_route53_record" "apiserver" {
  zone_id = var.zone_id
  name    = "kubernetes.${local.domain}"
  type    = "A"

  alias {
    name                   = aws_lb.apiserver.dns_name
    zone_id                = aws_lb.apiserver.zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "bastion" {
  zone_id = var.zone_id
  name    = "bastion.${local.domain}"
  type    = "A"
  ttl     = 300
  records = [aws_instance.bastion.public_ip]
}

resource "aws_route53_record" "etcd" {
  count = local.etcd_count

  zone_id = var.zone_id
  name    = local.etcd_fqdns[count.index]
  type    = "A"
  ttl     = 300
  records = [aws_instance.etcd[count.index].private_ip]
}
