terraform {
  # The calling layer pins exact versions (its versions.tf); this only states what the module needs.
  required_version = ">= 1.11.4"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.25.0"
    }
  }
}
