# Operating system image: Flatcar Container Linux stable unless var.ami names one.
# The lookup only happens when var.ami is empty, so an explicit AMI works in
# regions or emulators that do not carry Flatcar.

data "aws_ami" "flatcar" {
  count = var.ami == "" ? 1 : 0

  most_recent = true
  owners      = ["075585003325"] # Flatcar's publishing account

  filter {
    name   = "name"
    values = ["Flatcar-stable-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

locals {
  ami = var.ami != "" ? var.ami : data.aws_ami.flatcar[0].image_id
}
