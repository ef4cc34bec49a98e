terraform {
  # One Terraform version for every layer and workflow (terraform/.terraform-version says the same).
  required_version = "1.11.4"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.25.0"
    }
  }

  # Partial configuration: `bucket` and `region` come from `terraform init -backend-config=…`
  # (README). This layer creates that bucket, so its very first apply runs with a local backend
  # override and then migrates its state into the bucket.
  # NOTE: no `encrypt = true` here or in the other layers: it would make the backend request SSE-S3
  # and override the bucket's default SSE-KMS encryption with the state key.
  backend "s3" {
    key          = "bootstrap/terraform.tfstate"
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project   = var.project
      Layer     = "bootstrap"
      ManagedBy = "terraform"
    }
  }
}
