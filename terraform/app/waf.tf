# Optional edge WAF (var.waf_rate_limit): a per-IP rate limit in front of the write path plus AWS's
# known-bad-inputs rules. Only blocked requests are logged, so the log cost follows attacks, not
# traffic.

resource "aws_wafv2_web_acl" "this" {
  count    = var.waf_rate_limit == null ? 0 : 1
  provider = aws.us_east_1

  name        = "${local.name}-edge"
  description = "Rate limit per client IP and known bad inputs for ${local.name}"
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.waf_rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${local.name}-edge"
    sampled_requests_enabled   = true
  }
}

# WAF requires the aws-waf-logs- prefix.
resource "aws_cloudwatch_log_group" "waf" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with a service key; blocked-request logs hold client IPs and paths, nothing secret.
  #checkov:skip=CKV_AWS_338:30 days covers incident analysis of blocked traffic.
  count    = var.waf_rate_limit == null ? 0 : 1
  provider = aws.us_east_1

  name              = "aws-waf-logs-${local.name}"
  retention_in_days = 30
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  count    = var.waf_rate_limit == null ? 0 : 1
  provider = aws.us_east_1

  resource_arn            = aws_wafv2_web_acl.this[0].arn
  log_destination_configs = [aws_cloudwatch_log_group.waf[0].arn]

  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}
