terraform {
  # One Terraform version for every layer and workflow (terraform/.terraform-version says the same).
  required_version = "1.11.4"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.25.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }

  # Partial configuration: `bucket` and `region` come from `terraform init -backend-config=…`.
  backend "s3" {
    key          = "infra/terraform.tfstate"
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project   = var.project
      Layer     = "infra"
      ManagedBy = "terraform"
    }
  }
}
