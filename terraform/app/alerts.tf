# Alerts that do not depend on the cluster being healthy: the SNS topic every page and ticket goes
# to (Alertmanager publishes to it too), CloudFront's 5xx rate and a synthetic probe of the public
# URL, so a failure in front of the origin (CloudFront, WAF, ALB, binding, security group) pages
# even while every in-cluster SLO ratio reads 0.
#
# NOTE: all of it lives in us-east-1. CloudFront publishes its metrics and Route 53 its health-check
# metrics only there, an alarm can watch metrics of its own region only, and it can notify an SNS
# topic of its own region only. Alertmanager publishes cross-region (its sigv4 region is the
# topic's, output alerts_topic_region).
#
# Probe: a Route 53 HTTPS health check of the CloudFront URL, not a CloudWatch Synthetics canary.
# It probes from several AWS regions every 30 s with no code, bucket, Lambda or role to maintain,
# and it reaches the origin (GET /api/counter is cached for about a second). A canary would add a
# browser run and screenshots this one JSON endpoint does not need.

data "aws_iam_policy_document" "alerts_key" {
  #checkov:skip=CKV_AWS_111:Key policy: "*" is this key; the account delegates its use to IAM policies (the Alertmanager role).
  #checkov:skip=CKV_AWS_356:Key policy: its "*" resource is this key itself.
  #checkov:skip=CKV_AWS_109:Key policy: only the account (its IAM policies) administers the key.
  statement {
    sid       = "AccountAdministersKeyAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch alarms publish to an encrypted topic only with a customer-managed key that lets them.
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "alerts" {
  provider = aws.us_east_1

  description             = "${local.name}: alerts topic encryption"
  enable_key_rotation     = true
  deletion_window_in_days = var.teardown ? 7 : 30
  policy                  = data.aws_iam_policy_document.alerts_key.json
}

resource "aws_sns_topic" "alerts" {
  provider = aws.us_east_1

  name              = "${local.name}-alerts"
  kms_master_key_id = aws_kms_key.alerts.arn
}

# Dead man's switch: Alertmanager publishes the always-firing Watchdog here every 5 minutes
# (manifests/overlays/prod/alertmanagerconfig.yaml). When Prometheus or Alertmanager dies, the
# messages stop and the alarm below pages through the alerts topic.
resource "aws_sns_topic" "heartbeat" {
  provider = aws.us_east_1

  name              = "${local.name}-alertmanager-heartbeat"
  kms_master_key_id = aws_kms_key.alerts.arn
}

resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  #checkov:skip=CKV_AWS_319:Created with actions off on purpose (it breaches until the first deploy); the bootstrap's deploy stage enables them and Terraform ignores the switch afterwards.
  provider = aws.us_east_1

  alarm_name          = "${local.name}-alertmanager-heartbeat-missing"
  alarm_description   = "No Watchdog heartbeat from Alertmanager for 15 minutes: Prometheus or Alertmanager (eu-west-2 cluster, namespace monitoring) is down or cannot publish, so no other cluster alert can arrive. This alarm is in us-east-1. Runbook: https://github.com/example-org/counter-service/blob/main/observability/runbooks.md#cloudwatch-alarm-alertmanager-heartbeat-missing"
  namespace           = "AWS/SNS"
  metric_name         = "NumberOfMessagesPublished"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  # Created silent: missing data breaches, and until the first deploy succeeds there is no Watchdog,
  # so it would page through every bootstrap (and forever after a failed one). The bootstrap's deploy
  # stage enables the actions once the Application is Synced and Healthy (paging_alarm_names).
  actions_enabled = false

  dimensions = {
    TopicName = aws_sns_topic.heartbeat.name
  }

  lifecycle {
    # Owned by the deploy stage after creation; an apply must not silence a live deployment again.
    ignore_changes = [actions_enabled]
  }
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  # Principals of this account still need an IAM policy allowing sns:Publish (the Alertmanager role).
  statement {
    sid       = "ThisAccountWithIamPermission"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  provider = aws.us_east_1

  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

resource "aws_sns_topic_subscription" "alerts_email" {
  count    = var.alerts_email == null ? 0 : 1
  provider = aws.us_east_1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alerts_email
}

# ---------------------------------------------------------------------------------------------
# Edge: CloudFront's 5xx rate, with its additional metrics (per-status rates, origin latency) on.
# ---------------------------------------------------------------------------------------------

resource "aws_cloudfront_monitoring_subscription" "this" {
  distribution_id = aws_cloudfront_distribution.this.id

  monitoring_subscription {
    realtime_metrics_subscription_config {
      realtime_metrics_subscription_status = "Enabled"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "edge_5xx" {
  provider = aws.us_east_1

  alarm_name          = "${local.name}-edge-5xx"
  alarm_description   = "More than ${var.edge_5xx_alarm_percent}% of viewer requests answered 5xx at CloudFront for 3 of 5 minutes (quiet below ${var.edge_alarm_min_requests} requests/min). This alarm is in us-east-1; the ALB and cluster are in eu-west-2. Runbook: https://github.com/example-org/counter-service/blob/main/observability/runbooks.md#cloudwatch-alarm-edge-5xx"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.edge_5xx_alarm_percent
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= ${var.edge_alarm_min_requests}, errors, 0)"
    label       = "5xx rate with a minimum of traffic"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = "AWS/CloudFront"
      metric_name = "5xxErrorRate"
      period      = 60
      stat        = "Average"
      dimensions = {
        DistributionId = aws_cloudfront_distribution.this.id
        Region         = "Global"
      }
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/CloudFront"
      metric_name = "Requests"
      period      = 60
      stat        = "Sum"
      dimensions = {
        DistributionId = aws_cloudfront_distribution.this.id
        Region         = "Global"
      }
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Synthetic probe: the public URL as a viewer sees it.
# ---------------------------------------------------------------------------------------------

resource "aws_route53_health_check" "public_url" {
  fqdn              = length(var.aliases) > 0 ? var.aliases[0] : aws_cloudfront_distribution.this.domain_name
  type              = "HTTPS"
  port              = 443
  resource_path     = var.probe_path
  request_interval  = 30
  failure_threshold = 3
  enable_sni        = true

  tags = {
    Name = "${local.name}-public-url"
  }
}

resource "aws_cloudwatch_metric_alarm" "public_url" {
  #checkov:skip=CKV_AWS_319:Created with actions off on purpose (it breaches until the first deploy); the bootstrap's deploy stage enables them and Terraform ignores the switch afterwards.
  provider = aws.us_east_1

  alarm_name          = "${local.name}-public-url-down"
  alarm_description   = "The Route 53 health check of https://${aws_route53_health_check.public_url.fqdn}${var.probe_path} has failed for 2 minutes. This alarm is in us-east-1; the ALB and cluster are in eu-west-2. Runbook: https://github.com/example-org/counter-service/blob/main/observability/runbooks.md#cloudwatch-alarm-public-url-down"
  namespace           = "AWS/Route53"
  metric_name         = "HealthCheckStatus"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  # Silent until the deploy stage has a served page to probe (see the heartbeat alarm).
  actions_enabled = false

  dimensions = {
    HealthCheckId = aws_route53_health_check.public_url.id
  }

  lifecycle {
    ignore_changes = [actions_enabled]
  }
}
