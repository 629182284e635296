# Security groups (instance firewalls). Only three things face the internet:
# SSH on the bastion (from var.ssh_cidr, nobody unless given), 443 on the
# masters (through the API NLB) and 80/443 on the nodes (ingress). Both NLBs
# preserve client addresses, so those rules must name the clients, 0.0.0.0/0:
# in the private topology masters and nodes have no public address and no
# route in, so the load balancer is the only path from the internet to those
# ports (and its health checks come from its own addresses in the VPC). In the
# public topology the same rules also admit direct traffic to the servers'
# public addresses. All other traffic flows only between the cluster's groups.
#
# Rules whose source is another group carry a comment instead of a description:
# moto reports descriptions of such rules inconsistently and plans never settle.

resource "aws_security_group" "bastion" {
  name        = "${var.cluster}-bastion"
  description = "kaws ${var.cluster} bastion: SSH entry point"
  vpc_id      = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-bastion"
  }
}

resource "aws_security_group" "etcd" {
  name        = "${var.cluster}-etcd"
  description = "kaws ${var.cluster} etcd servers"
  vpc_id      = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-etcd"
  }
}

resource "aws_security_group" "controller" {
  name        = "${var.cluster}-controller"
  description = "kaws ${var.cluster} masters"
  vpc_id      = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-controller"
  }
}

resource "aws_security_group" "worker" {
  name        = "${var.cluster}-worker"
  description = "kaws ${var.cluster} nodes"
  vpc_id      = aws_vpc.network.id

  tags = {
    Name = "${var.cluster}-worker"
  }
}

# Operators reach the cluster only through the bastion, from var.ssh_cidr.
resource "aws_vpc_security_group_ingress_rule" "bastion_ssh" {
  count = var.ssh_cidr == "" ? 0 : 1

  security_group_id = aws_security_group.bastion.id

  ip_protocol = "tcp"
  from_port   = 22
  to_port     = 22
  cidr_ipv4   = var.ssh_cidr
  description = "SSH from operators"
}

# Clusters made before ssh_cidr could be empty keep their rule in place.
moved {
  from = aws_vpc_security_group_ingress_rule.bastion_ssh
  to   = aws_vpc_security_group_ingress_rule.bastion_ssh[0]
}

# SSH to etcd servers only through the bastion.
resource "aws_vpc_security_group_ingress_rule" "etcd_ssh" {
  security_group_id = aws_security_group.etcd.id

  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.bastion.id
}

# kube-apiserver on the masters is etcd's only client.
resource "aws_vpc_security_group_ingress_rule" "etcd_client" {
  security_group_id = aws_security_group.etcd.id

  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
  referenced_security_group_id = aws_security_group.controller.id
}

# etcd members replicate to each other.
resource "aws_vpc_security_group_ingress_rule" "etcd_peer" {
  security_group_id = aws_security_group.etcd.id

  ip_protocol                  = "tcp"
  from_port                    = 2380
  to_port                      = 2380
  referenced_security_group_id = aws_security_group.etcd.id
}

# SSH to masters only through the bastion.
resource "aws_vpc_security_group_ingress_rule" "controller_ssh" {
  security_group_id = aws_security_group.controller.id

  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.bastion.id
}

# kube-apiserver behind the API NLB, which keeps client addresses: kubectl and the nodes (through NAT in the private topology) appear here.
resource "aws_vpc_security_group_ingress_rule" "controller_apiserver" {
  security_group_id = aws_security_group.controller.id

  ip_protocol = "tcp"
  from_port   = 443
  to_port     = 443
  cidr_ipv4   = "0.0.0.0/0"
  description = "kube-apiserver via NLB"
}

# SSH to nodes only through the bastion.
resource "aws_vpc_security_group_ingress_rule" "worker_ssh" {
  security_group_id = aws_security_group.worker.id

  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  referenced_security_group_id = aws_security_group.bastion.id
}

# Ingress controllers serve HTTP on the nodes (private: only through the ingress NLB, which keeps client addresses).
resource "aws_vpc_security_group_ingress_rule" "worker_http" {
  security_group_id = aws_security_group.worker.id

  ip_protocol = "tcp"
  from_port   = 80
  to_port     = 80
  cidr_ipv4   = "0.0.0.0/0"
  description = "HTTP ingress"
}

# Ingress controllers serve HTTPS on the nodes (private: only through the ingress NLB, which keeps client addresses).
resource "aws_vpc_security_group_ingress_rule" "worker_https" {
  security_group_id = aws_security_group.worker.id

  ip_protocol = "tcp"
  from_port   = 443
  to_port     = 443
  cidr_ipv4   = "0.0.0.0/0"
  description = "HTTPS ingress"
}

# kube-apiserver reaches kubelets for exec, logs and port-forward.
resource "aws_vpc_security_group_ingress_rule" "worker_kubelet" {
  security_group_id = aws_security_group.worker.id

  ip_protocol                  = "tcp"
  from_port                    = 10250
  to_port                      = 10250
  referenced_security_group_id = aws_security_group.controller.id
}

# metrics-server and monitoring on the nodes scrape kubelets.
resource "aws_vpc_security_group_ingress_rule" "worker_kubelet_self" {
  security_group_id = aws_security_group.worker.id

  ip_protocol                  = "tcp"
  from_port                    = 10250
  to_port                      = 10250
  referenced_security_group_id = aws_security_group.worker.id
}

# flannel VXLAN overlay carries pod-to-pod traffic between nodes.
resource "aws_vpc_security_group_ingress_rule" "worker_vxlan" {
  security_group_id = aws_security_group.worker.id

  ip_protocol                  = "udp"
  from_port                    = 8472
  to_port                      = 8472
  referenced_security_group_id = aws_security_group.worker.id
}

# Servers fetch images, keys (S3), decrypt (KMS) and talk to peers freely outbound.
resource "aws_vpc_security_group_egress_rule" "bastion_egress" {
  security_group_id = aws_security_group.bastion.id

  ip_protocol = "-1"
  cidr_ipv4   = "0.0.0.0/0"
  description = "All outbound"
}

# Servers fetch images, keys (S3), decrypt (KMS) and talk to peers freely outbound.
resource "aws_vpc_security_group_egress_rule" "etcd_egress" {
  security_group_id = aws_security_group.etcd.id

  ip_protocol = "-1"
  cidr_ipv4   = "0.0.0.0/0"
  description = "All outbound"
}

# Servers fetch images, keys (S3), decrypt (KMS) and talk to peers freely outbound.
resource "aws_vpc_security_group_egress_rule" "controller_egress" {
  security_group_id = aws_security_group.controller.id

  ip_protocol = "-1"
  cidr_ipv4   = "0.0.0.0/0"
  description = "All outbound"
}

# Servers fetch images, keys (S3), decrypt (KMS) and talk to peers freely outbound.
resource "aws_vpc_security_group_egress_rule" "worker_egress" {
  security_group_id = aws_security_group.worker.id

  ip_protocol = "-1"
  cidr_ipv4   = "0.0.0.0/0"
  description = "All outbound"
}
