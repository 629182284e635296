output "api_endpoint" {
  description = "URL of the Kubernetes API (kubernetes.<domain>, aliased to the NLB)"
  value       = local.api_endpoint
}

output "bastion_address" {
  description = "Public IPv4 address of the bastion"
  value       = aws_instance.bastion.public_ip
}

output "bastion_fqdn" {
  description = "DNS name of the bastion"
  value       = aws_route53_record.bastion.fqdn
}

output "vpc_id" {
  description = "Id of the cluster's VPC"
  value       = aws_vpc.network.id
}

output "topology" {
  description = "The cluster's network layout: private or public"
  value       = var.topology
}

output "subnet_ids" {
  description = "Ids of the public subnets, one per availability zone"
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Ids of the private subnets, one per availability zone (empty when public)"
  value       = aws_subnet.private[*].id
}

output "ingress_dns_name" {
  description = "DNS name of the ingress load balancer (80 and 443 to the nodes; empty when public)"
  value       = one(aws_lb.ingress[*].dns_name)
}

output "security_group_ids" {
  description = "Security group id per role (bastion, etcd, controller, worker)"
  value = {
    bastion    = aws_security_group.bastion.id
    etcd       = aws_security_group.etcd.id
    controller = aws_security_group.controller.id
    worker     = aws_security_group.worker.id
  }
}

output "bucket" {
  description = "S3 bucket holding certificates (certs/) and key ciphertext (keys/)"
  value       = aws_s3_bucket.keys.id
}

output "role_arns" {
  description = "IAM role ARN per role (etcd, controller, worker)"
  value       = { for role, r in aws_iam_role.role : role => r.arn }
}

output "etcd_fqdns" {
  description = "DNS names of the etcd members"
  value       = aws_route53_record.etcd[*].fqdn
}

output "nlb_dns_name" {
  description = "DNS name of the API load balancer"
  value       = aws_lb.apiserver.dns_name
}
