variable "aws_region" {
  description = "Region of the state bucket and of every regional resource of the project."
  type        = string
  default     = "eu-west-2"
}

variable "project" {
  description = "Name prefix of everything this project creates; also the IAM path (/<project>/) that scopes what the apply role may manage."
  type        = string
  default     = "counter-service"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.project))
    error_message = "project must be 3-32 lowercase letters, digits or hyphens."
  }
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose workflows may assume the CI roles. Nothing else can."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_main_branch" {
  description = "The protected branch that may plan every layer and push release images."
  type        = string
  default     = "main"
}

variable "github_apply_environment" {
  description = "GitHub environment (protected: main only, required reviewers) whose jobs may assume the apply role."
  type        = string
  default     = "production"
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub Actions OIDC provider. Set false when the account already has one (there can be only one per URL)."
  type        = bool
  default     = true
}

variable "state_bucket_name" {
  description = "Name of the Terraform state bucket. Null derives a globally unique one from project, account id and region."
  type        = string
  default     = null
}

variable "ecr_repository_name" {
  description = "ECR repository the release role may push to (created by terraform/infra; the name must match its variable)."
  type        = string
  default     = "counter-origin"
}

variable "cluster_name" {
  description = "Name of the manually created EKS cluster, handed to the workflows as a repository variable."
  type        = string
  default     = "counter-service"
}

variable "noncurrent_state_retention_days" {
  description = "How long superseded state versions are kept (the undo history of the state bucket)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_state_retention_days >= 30
    error_message = "Keep at least 30 days of state history."
  }
}
