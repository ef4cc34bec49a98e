# EKS Pod Identity roles of the workloads that call AWS. Each role is trusted by the EKS pods
# service on behalf of this cluster only, and bound to exactly one namespace/service account by
# its association; no ServiceAccount annotation is needed (the Pod Identity agent, an infra
# add-on, hands out the credentials).

locals {
  pod_identity = {
    # The origin signs an RDS IAM auth token per new connection (DATABASE_AUTH=iam).
    origin = {
      namespace       = var.app_namespace
      service_account = "counter-origin"
      policy          = data.aws_iam_policy_document.origin.json
    }
    # `counter-origin migrate` (Argo CD PreSync Job) reads the RDS-managed master secret.
    migrate = {
      namespace       = var.app_namespace
      service_account = "counter-migrate"
      policy          = data.aws_iam_policy_document.migrate.json
    }
    # Alertmanager's sns_configs publish page and ticket alerts, and the Watchdog heartbeat.
    alertmanager = {
      namespace       = "monitoring"
      service_account = "kube-prometheus-stack-alertmanager"
      policy          = data.aws_iam_policy_document.alertmanager.json
    }
    # Grafana's CloudWatch data source (the CloudFront panels): read-only.
    grafana = {
      namespace       = "monitoring"
      service_account = "kube-prometheus-stack-grafana"
      policy          = data.aws_iam_policy_document.grafana.json
    }
  }

  # rds-db:connect names the instance by its resource id and the database user, never the endpoint.
  db_user_arn = "arn:${local.partition}:rds-db:${var.aws_region}:${local.account_id}:dbuser:${local.infra.db_resource_id}/${var.db_app_role}"
}

data "aws_iam_policy_document" "pod_identity_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [data.aws_eks_cluster.this.arn]
    }
  }
}

data "aws_iam_policy_document" "origin" {
  statement {
    sid       = "ConnectAsTheAppRoleOnly"
    actions   = ["rds-db:connect"]
    resources = [local.db_user_arn]
  }
}

# The master secret is created by RDS and encrypted with the AWS-managed aws/secretsmanager key,
# whose key policy lets Secrets Manager decrypt for any principal of the account allowed to read
# the secret: no kms:Decrypt grant is needed (one would be, for a customer-managed key).
data "aws_iam_policy_document" "migrate" {
  statement {
    sid       = "ReadTheMasterSecretOnly"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.infra.db_master_user_secret_arn]
  }
}

data "aws_iam_policy_document" "alertmanager" {
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn, aws_sns_topic.heartbeat.arn]
  }

  # The topics are encrypted with its own key: publishers need a data key from it.
  statement {
    sid       = "EncryptForTheTopic"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.alerts.arn]
  }
}

data "aws_iam_policy_document" "grafana" {
  #checkov:skip=CKV_AWS_356:CloudWatch metric reads, ec2:DescribeRegions and tag:GetResources have no resource-level permissions.
  statement {
    sid = "ReadMetricsAndAlarms"
    actions = [
      "cloudwatch:DescribeAlarmHistory",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:DescribeAlarmsForMetric",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
      "ec2:DescribeRegions",
      "tag:GetResources",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "pod_identity" {
  for_each = local.pod_identity

  name                 = "${local.name}-${each.key}"
  path                 = local.infra.iam_path
  permissions_boundary = local.infra.permissions_boundary_arn
  assume_role_policy   = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role_policy" "pod_identity" {
  for_each = local.pod_identity

  name   = each.key
  role   = aws_iam_role.pod_identity[each.key].id
  policy = each.value.policy
}

resource "aws_eks_pod_identity_association" "this" {
  for_each = local.pod_identity

  cluster_name    = data.aws_eks_cluster.this.name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.pod_identity[each.key].arn
}
