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
  # NOTE: no `encrypt = true` / `kms_key_id` here, in the other layers or in any -backend-config:
  # the backend then sends no SSE header and S3 applies the bucket's default (SSE-KMS with the state
  # key). The bucket policy refuses only a header asking for something else (`encrypt = true` alone
  # asks for SSE-S3), so every layer and workflow must keep to this one way (terraform/tests).
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
