# CI roles and the workload permissions boundary. Trust: this repository only, `aud` pinned to STS,
# `sub` pinned to a branch, pull requests or the protected environment (never `repo:…:*`).

locals {
  ci_roles = {
    plan = {
      description = "Terraform plan for pull requests and main: read-only AWS access plus state access."
      subjects    = [local.sub_pr, local.sub_main]
    }
    apply = {
      description = "Terraform apply from the protected environment: power user plus IAM under /${var.project}/."
      subjects    = [local.sub_environment]
    }
    release = {
      description = "Release workflow on main: push images to the origin's ECR repository."
      subjects    = [local.sub_main]
    }
  }
}

data "aws_iam_policy_document" "github_trust" {
  for_each = local.ci_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_url}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_url}:sub"
      values   = each.value.subjects
    }
  }
}

resource "aws_iam_role" "ci" {
  for_each = local.ci_roles

  name                 = "${var.project}-github-${each.key}"
  description          = each.value.description
  assume_role_policy   = data.aws_iam_policy_document.github_trust[each.key].json
  max_session_duration = 3600
}

# ---------------------------------------------------------------------------------------------
# plan: read everything, write only lock files, read the one secret Terraform refreshes.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "plan_read_only" {
  role       = aws_iam_role.ci["plan"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "plan" {
  statement {
    sid       = "ReadState"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
  }

  statement {
    sid       = "ReadStateObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.state.arn}/*"]
  }

  # Plans take the S3-native lock too, so they never read a state an apply is rewriting.
  statement {
    sid       = "LockFilesOnly"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state.arn}/*.tflock"]
  }

  # terraform-apply.yml's plan job saves the plan under plans/<run id>/ for the approved apply job,
  # which checks its SHA-256 against the plan job's output before applying it.
  statement {
    sid       = "SavePlans"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.state.arn}/plans/*"]
  }

  statement {
    sid       = "UseStateKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.state.arn]
  }

  # Refreshing aws_secretsmanager_secret_version reads the value; limited to this project's secrets
  # (the origin-verify header, which the state holds anyway).
  statement {
    sid       = "RefreshProjectSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${var.project}/*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "terraform-plan"
  role   = aws_iam_role.ci["plan"].id
  policy = data.aws_iam_policy_document.plan.json
}

# ---------------------------------------------------------------------------------------------
# apply: infra and app create VPC subnets, NAT, EKS node groups/add-ons/access entries, RDS, ECR,
# ALB, CloudFront, WAF, Secrets Manager, KMS and S3 — PowerUserAccess covers those services. IAM
# is the escalation path, so it is limited to the /<project>/ path and every role created must
# carry the workload boundary.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "apply_power_user" {
  role       = aws_iam_role.ci["apply"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/PowerUserAccess"
}

data "aws_iam_policy_document" "apply_iam" {
  #checkov:skip=CKV_AWS_356:iam:Get*/List* are read-only and have no resource-level scoping worth having; writes below are scoped.
  #checkov:skip=CKV_AWS_111:Writes are limited to the /<project>/ path and to roles carrying the workload boundary (conditions below).
  statement {
    sid       = "ReadIam"
    actions   = ["iam:Get*", "iam:List*"]
    resources = ["*"]
  }

  statement {
    sid = "CreateBoundedRoles"
    actions = [
      "iam:CreateRole",
      "iam:PutRolePermissionsBoundary",
      "iam:AttachRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePolicy",
      "iam:DeleteRolePolicy",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role${local.workload_path}*"]

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.workload_boundary.arn]
    }
  }

  statement {
    sid = "ManageProjectRoles"
    actions = [
      "iam:DeleteRole",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
      "iam:UpdateAssumeRolePolicy",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role${local.workload_path}*"]
  }

  statement {
    sid = "ManageProjectPolicies"
    actions = [
      "iam:CreatePolicy",
      "iam:CreatePolicyVersion",
      "iam:DeletePolicy",
      "iam:DeletePolicyVersion",
      "iam:TagPolicy",
      "iam:UntagPolicy",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:policy${local.workload_path}*"]
  }

  # The EKS cluster's IRSA provider (infra). Its URL is the cluster's issuer.
  statement {
    sid = "ManageEksOidcProvider"
    actions = [
      "iam:CreateOpenIDConnectProvider",
      "iam:DeleteOpenIDConnectProvider",
      "iam:TagOpenIDConnectProvider",
      "iam:UntagOpenIDConnectProvider",
      "iam:AddClientIDToOpenIDConnectProvider",
      "iam:UpdateOpenIDConnectProviderThumbprint",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:oidc-provider/oidc.eks.${var.aws_region}.amazonaws.com/id/*"]
  }

  statement {
    sid       = "PassProjectRolesToTheirServices"
    actions   = ["iam:PassRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role${local.workload_path}*"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["eks.amazonaws.com", "pods.eks.amazonaws.com", "monitoring.rds.amazonaws.com"]
    }
  }

  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values = [
        "autoscaling.amazonaws.com",
        "eks.amazonaws.com",
        "eks-nodegroup.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
        "rds.amazonaws.com",
      ]
    }
  }

  statement {
    sid       = "NeverDropTheBoundary"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "apply_iam" {
  name   = "terraform-apply-iam"
  role   = aws_iam_role.ci["apply"].id
  policy = data.aws_iam_policy_document.apply_iam.json
}

# ---------------------------------------------------------------------------------------------
# release: ECR push to one repository. No cluster access: deployment is a Git commit (GitOps).
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "release" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushOriginImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [local.ecr_repository_arn]
  }
}

resource "aws_iam_role_policy" "release" {
  name   = "ecr-push"
  role   = aws_iam_role.ci["release"].id
  policy = data.aws_iam_policy_document.release.json
}

# ---------------------------------------------------------------------------------------------
# Workload permissions boundary: the ceiling for every role infra/app create (node, IRSA, Pod
# Identity, RDS monitoring). It grants nothing by itself; it caps what the apply role can hand
# out to the services the workloads actually call.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "workload_boundary" {
  #checkov:skip=CKV_AWS_356:A permissions boundary is a ceiling, not a grant; the roles' own policies scope resources.
  #checkov:skip=CKV_AWS_111:A permissions boundary is a ceiling, not a grant; the roles' own policies scope resources.
  #checkov:skip=CKV_AWS_109:A permissions boundary is a ceiling, not a grant; IAM itself is excluded.
  #checkov:skip=CKV_AWS_108:A permissions boundary is a ceiling, not a grant; the roles' own policies scope data access.
  #checkov:skip=CKV_AWS_107:A permissions boundary is a ceiling, not a grant; ecr:GetAuthorizationToken (node image pulls) is what this check sees.
  statement {
    sid = "WorkloadServices"
    actions = [
      "autoscaling:*",
      "cloudwatch:*",
      "ec2:*",
      "ec2messages:*",
      "ecr:*",
      "eks:*",
      "eks-auth:*",
      "elasticloadbalancing:*",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "logs:*",
      "rds-db:connect",
      "secretsmanager:GetSecretValue",
      "sns:Publish",
      "ssm:*",
      "ssmmessages:*",
      "sts:AssumeRole",
      "sts:TagSession",
      "tag:GetResources",
      "xray:*",
    ]
    resources = ["*"]
  }

  # Encrypted EBS volumes (the gp3 StorageClass): EC2 asks KMS for a grant on the volume's key in
  # the EBS CSI driver's name, even for the AWS-managed aws/ebs key, whose key policy admits the
  # account's principals through EC2. A boundary without these leaves every PVC Pending
  # (the driver's documented KMS policy; grants only for AWS resources).
  statement {
    sid       = "KmsGrantsForEncryptedVolumes"
    actions   = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    resources = ["*"]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_iam_policy" "workload_boundary" {
  name        = "${var.project}-workload-boundary"
  path        = local.workload_path
  description = "Permissions boundary required on every role that terraform/infra and terraform/app create."
  policy      = data.aws_iam_policy_document.workload_boundary.json
}
