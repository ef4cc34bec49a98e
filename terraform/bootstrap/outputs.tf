output "aws_region" {
  description = "Region of the state bucket and of the project's regional resources."
  value       = var.aws_region
}

output "state_bucket" {
  description = "Terraform state bucket: pass as -backend-config=bucket=… to every layer's init."
  value       = aws_s3_bucket.state.id
}

output "state_kms_key_arn" {
  description = "KMS key encrypting the state bucket."
  value       = aws_kms_key.state.arn
}

output "github_oidc_provider_arn" {
  description = "The account's GitHub Actions OIDC provider."
  value       = local.github_oidc_provider
}

output "terraform_plan_role_arn" {
  description = "Role for `terraform plan` (pull requests and main)."
  value       = aws_iam_role.ci["plan"].arn
}

output "terraform_apply_role_arn" {
  description = "Role for `terraform apply` (jobs in the protected environment)."
  value       = aws_iam_role.ci["apply"].arn
}

output "release_role_arn" {
  description = "Role for the release workflow (push to the origin's ECR repository)."
  value       = aws_iam_role.ci["release"].arn
}

output "workload_permissions_boundary_arn" {
  description = "Permissions boundary that every role created by infra and app must carry."
  value       = aws_iam_policy.workload_boundary.arn
}

output "workload_iam_path" {
  description = "IAM path of the roles and policies that infra and app create."
  value       = local.workload_path
}

output "ecr_registry" {
  description = "ECR registry host of this account and region (images are <registry>/<repository>:sha-<git sha>)."
  value       = "${local.account_id}.dkr.ecr.${var.aws_region}.amazonaws.com"
}

# Everything the workflows read, named as GitHub repository variables. Set them once with
#   terraform output -json github_variables | jq -r 'to_entries[] | "\(.key) \(.value)"' |
#     while read -r k v; do gh variable set "$k" --body "$v"; done
# None of them is a secret: role ARNs are useless without a token from this repository.
output "github_variables" {
  description = "GitHub repository variables for the workflows (name => value)."
  value = {
    AWS_REGION               = var.aws_region
    TF_STATE_BUCKET          = aws_s3_bucket.state.id
    AWS_ROLE_TERRAFORM_PLAN  = aws_iam_role.ci["plan"].arn
    AWS_ROLE_TERRAFORM_APPLY = aws_iam_role.ci["apply"].arn
    AWS_ROLE_RELEASE         = aws_iam_role.ci["release"].arn
    ECR_REGISTRY             = "${local.account_id}.dkr.ecr.${var.aws_region}.amazonaws.com"
    ECR_REPOSITORY           = var.ecr_repository_name
    EKS_CLUSTER_NAME         = var.cluster_name
  }
}
