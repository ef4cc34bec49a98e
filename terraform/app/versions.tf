terraform {
  # One Terraform version for every layer and workflow (terraform/.terraform-version says the same).
  required_version = "1.11.4"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.25.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "3.1.1"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }

  # Partial configuration: `bucket` and `region` come from `terraform init -backend-config=…`.
  backend "s3" {
    key          = "app/terraform.tfstate"
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project   = var.project
      Layer     = "app"
      ManagedBy = "terraform"
    }
  }
}

# CloudFront-scoped WAF web ACLs (and their log groups) live in us-east-1, whatever the region.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = {
      Project   = var.project
      Layer     = "app"
      ManagedBy = "terraform"
    }
  }
}

# Short-lived tokens from `aws eks get-token` (the AWS CLI is on the CI runners): no token is ever
# stored in state, unlike the aws_eks_cluster_auth data source.
provider "helm" {
  kubernetes = {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)

    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", data.aws_eks_cluster.this.name, "--region", var.aws_region]
    }
  }
}
