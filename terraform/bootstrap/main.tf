# Layer: bootstrap — applied once by an account administrator, then only planned by CI.
#
# Owns what every other layer and workflow stands on:
#   - the Terraform state bucket (versioned, SSE-KMS with its own key, public access blocked,
#     TLS-only) — locking is S3-native (`use_lockfile`), so there is no DynamoDB table;
#   - the GitHub Actions OIDC provider and three CI roles, each trusted only by this repository
#     with `aud = sts.amazonaws.com` and a `sub` naming the branch or environment:
#       plan     pull requests and main: read-only + state access,
#       apply    jobs in the protected environment: power user + IAM limited to /<project>/,
#       release  pushes to main: push images to the one ECR repository;
#   - the permissions boundary every role created by infra/app must carry, so the apply role
#     cannot mint a role more powerful than the boundary.
#
# NOTE: the apply role cannot change this layer: its IAM rights stop at the /<project>/ path and the
# CI roles live outside it (path /, which EKS access entries also expect). Changing CI permissions
# stays an administrator's act.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  state_bucket_name = coalesce(var.state_bucket_name, "${var.project}-tfstate-${local.account_id}-${var.aws_region}")

  # IAM path of every role/policy that infra and app create; the apply role may manage nothing else.
  workload_path = "/${var.project}/"

  github_oidc_url      = "token.actions.githubusercontent.com"
  github_oidc_provider = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn

  # `sub` claims as GitHub writes them: a branch ref for push/workflow_dispatch, `pull_request` for
  # PRs (forks get no OIDC token), `environment:<name>` for jobs bound to an environment.
  sub_main        = "repo:${var.github_repository}:ref:refs/heads/${var.github_main_branch}"
  sub_pr          = "repo:${var.github_repository}:pull_request"
  sub_environment = "repo:${var.github_repository}:environment:${var.github_apply_environment}"

  ecr_repository_arn = "arn:${local.partition}:ecr:${var.aws_region}:${local.account_id}:repository/${var.ecr_repository_name}"
}

# ---------------------------------------------------------------------------------------------
# State bucket
# ---------------------------------------------------------------------------------------------

resource "aws_kms_key" "state" {
  description             = "${var.project}: Terraform state encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.state_key.json
}

resource "aws_kms_alias" "state" {
  name          = "alias/${var.project}-tfstate"
  target_key_id = aws_kms_key.state.key_id
}

# Key policy: the account administers the key; use is granted by IAM policies (the CI roles below).
data "aws_iam_policy_document" "state_key" {
  #checkov:skip=CKV_AWS_111:AWS's default key policy: a key policy's "*" resource is the key itself, and the account root delegates use to IAM.
  #checkov:skip=CKV_AWS_356:AWS's default key policy: a key policy's "*" resource is the key itself.
  #checkov:skip=CKV_AWS_109:AWS's default key policy: only the account (its IAM policies) administers the key.
  statement {
    sid       = "AccountAdministersKeyAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket per account; state reads and writes are audited with CloudTrail S3 data events instead (README).
  #checkov:skip=CKV_AWS_144:Cross-region replication of a few KB of state is not worth a second region; versioning with 90 days of history is the recovery path.
  #checkov:skip=CKV2_AWS_62:No consumer for object events on the state bucket.
  bucket = local.state_bucket_name

  lifecycle {
    prevent_destroy = true
  }
}

# Versioning, SSE-KMS with the state key, public access block, ACLs off, lifecycle and the TLS-only
# policy: the project's one hardened-bucket definition, plus this bucket's encryption rules below.
module "state_bucket" {
  source = "../modules/s3-bucket-hardening"

  bucket           = aws_s3_bucket.state.id
  bucket_arn       = aws_s3_bucket.state.arn
  kms_key_arn      = aws_kms_key.state.arn
  object_ownership = "BucketOwnerEnforced"

  lifecycle_rules = [
    {
      id                           = "expire-superseded-state"
      noncurrent_days              = var.noncurrent_state_retention_days
      abort_incomplete_upload_days = 7
    },
    # Saved plans (terraform-apply.yml) live here between the plan job and the approved apply job;
    # they hold the same values as the state, so they get the same bucket, key and policy.
    {
      id              = "expire-saved-plans"
      prefix          = "plans/"
      expiration_days = 7
      noncurrent_days = 1
    },
  ]

  policy_documents = [data.aws_iam_policy_document.state_bucket.json]
}

# The hardening used to be written out here: these keep every object where it is in the state.
moved {
  from = aws_s3_bucket_versioning.state
  to   = module.state_bucket.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.state
  to   = module.state_bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_public_access_block.state
  to   = module.state_bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_ownership_controls.state
  to   = module.state_bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.state
  to   = module.state_bucket.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.state
  to   = module.state_bucket.aws_s3_bucket_policy.this
}

# This bucket's own statements; the module puts the TLS-only rules before them.
data "aws_iam_policy_document" "state_bucket" {
  # Every state object is encrypted by the bucket's default SSE-KMS with the state key: the S3
  # backends send no SSE header (no `encrypt = true`, see versions.tf), and a request without the
  # header gets the bucket default. What must be refused is a request that *asks* for something
  # else (SSE-S3, or another KMS key), which would bypass the key's access control. So deny only a
  # header that is present and different: `Null = false` + `StringNotEquals`. (An
  # `…IfExists` test would also match the absent header and refuse every state write.)
  statement {
    sid       = "DenyOtherEncryption"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }

  # `aws:kms` without a key id would encrypt with the AWS-managed aws/s3 key (S3 PutObject
  # reference), which every principal of the account may use: refuse it too.
  statement {
    sid       = "DenyKmsWithoutTheStateKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["true"]
    }
  }

  statement {
    sid       = "DenyOtherKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["false"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.state.arn]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# GitHub Actions OIDC
# ---------------------------------------------------------------------------------------------

# NOTE: no thumbprint_list: IAM validates GitHub's OIDC endpoint against its own trusted CAs.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.github_oidc_url}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = "https://${local.github_oidc_url}"
}
