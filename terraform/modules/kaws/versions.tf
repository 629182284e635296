# Provider requirements. The module declares no provider block and no backend:
# the root kaws writes per cluster (clusters/<c>/main.tf) owns both.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}
