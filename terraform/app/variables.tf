variable "aws_region" {
  description = "Region of the cluster, the ALB and every regional resource in this layer."
  type        = string
  default     = "eu-west-2"
}

variable "project" {
  description = "Name prefix of everything this layer creates (must match the other layers')."
  type        = string
  default     = "counter-service"
}

variable "state_bucket" {
  description = "Terraform state bucket created by the bootstrap layer (its `state_bucket` output); the infra layer's outputs are read from it."
  type        = string
}

variable "app_namespace" {
  description = "Kubernetes namespace of the origin and its ADOT collector (manifests/)."
  type        = string
  default     = "counter"
}

variable "target_group_name" {
  description = "Name of the origin's target group; the TargetGroupBinding in manifests/overlays/prod refers to it."
  type        = string
  default     = "counter-origin"

  validation {
    condition     = can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$", var.target_group_name))
    error_message = "A target group name is 1-32 letters, digits or hyphens, not starting or ending with a hyphen."
  }
}

variable "origin_domain_name" {
  description = "DNS name for the ALB covered by origin_certificate_arn (e.g. origin.example.com). Set: CloudFront reaches the ALB over HTTPS. Null: over HTTP to the ALB's own name (no certificate can cover *.elb.amazonaws.com)."
  type        = string
  default     = null
}

variable "origin_certificate_arn" {
  description = "ACM certificate (in aws_region) for origin_domain_name, served by the ALB's HTTPS listener."
  type        = string
  default     = null

  validation {
    condition     = (var.origin_certificate_arn == null) == (var.origin_domain_name == null)
    error_message = "Set origin_domain_name and origin_certificate_arn together (or neither)."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone in which to create origin_domain_name as an alias of the ALB. Null: create that record yourself."
  type        = string
  default     = null
}

variable "aliases" {
  description = "Viewer-facing domain names of the distribution (e.g. counter.example.com). Empty: the *.cloudfront.net name only."
  type        = list(string)
  default     = []
}

variable "viewer_certificate_arn" {
  description = "ACM certificate in us-east-1 covering the aliases."
  type        = string
  default     = null

  validation {
    condition     = (length(var.aliases) == 0) == (var.viewer_certificate_arn == null)
    error_message = "Set aliases and viewer_certificate_arn together (or neither)."
  }
}

variable "price_class" {
  description = "CloudFront price class (PriceClass_100: North America and Europe edges, the cheapest)."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "origin_shield_region" {
  description = "Region of a CloudFront Origin Shield in front of the ALB (e.g. eu-west-2). Null: no Origin Shield. It collapses edge misses into one origin fetch at extra per-request cost."
  type        = string
  default     = null
}

variable "waf_rate_limit" {
  description = "Requests per client IP per 5 minutes before the WAF blocks it (at the edge). Null: no web ACL (saves about 7 USD/month)."
  type        = number
  default     = 2000

  validation {
    condition     = var.waf_rate_limit == null ? true : var.waf_rate_limit >= 10
    error_message = "AWS WAF rate-based rules need a limit of at least 10 requests per evaluation window."
  }
}

variable "origin_verify_secret_versions" {
  description = "Two slots (a, b) of the secret X-Origin-Verify header. The ALB accepts both; CloudFront sends the active one. Rotate by bumping the inactive slot's number and making it active in the same apply."
  type        = map(number)
  default = {
    a = 1
    b = 1
  }

  validation {
    condition     = toset(keys(var.origin_verify_secret_versions)) == toset(["a", "b"])
    error_message = "origin_verify_secret_versions has exactly the slots a and b."
  }
}

variable "origin_verify_active" {
  description = "Slot (a or b) whose value CloudFront sends as X-Origin-Verify."
  type        = string
  default     = "a"

  validation {
    condition     = contains(["a", "b"], var.origin_verify_active)
    error_message = "origin_verify_active is a or b."
  }
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the ALB. Turn off deliberately (apply) before a teardown."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days of ALB and CloudFront access logs kept in the logs bucket."
  type        = number
  default     = 90
}

variable "aws_load_balancer_controller_chart_version" {
  description = "Exact version of the eks-charts aws-load-balancer-controller chart (only TargetGroupBinding is used)."
  type        = string
  default     = "1.14.0"
}

variable "cluster_autoscaler_chart_version" {
  description = "Exact version of the kubernetes/autoscaler cluster-autoscaler chart; its app minor version must match the cluster's Kubernetes minor (9.59.1 ships 1.35.0)."
  type        = string
  default     = "9.59.1"
}

variable "teardown" {
  description = "Set only by scripts/teardown.sh before a destroy: turns off the ALB's deletion protection, lets destroy empty the versioned log bucket and deletes the origin-verify secret without a recovery window."
  type        = bool
  default     = false
}

variable "db_app_role" {
  description = "PostgreSQL role the origin signs in as with IAM authentication (DATABASE_APP_ROLE; created by `counter-origin migrate`)."
  type        = string
  default     = "counter_app"
}

variable "alerts_email" {
  description = "E-mail address subscribed to the alerts topic (AWS sends a confirmation mail first). Null: no subscription; subscribe a pager or chat integration yourself."
  type        = string
  default     = null
}

variable "edge_5xx_alarm_percent" {
  description = "CloudFront 5xxErrorRate (percent of viewer requests) above which the edge alarm fires, when at least edge_alarm_min_requests arrive per minute."
  type        = number
  default     = 5
}

variable "edge_alarm_min_requests" {
  description = "Requests per minute below which the edge 5xx alarm stays quiet: one failed request in a quiet minute is not an outage."
  type        = number
  default     = 20
}

variable "probe_path" {
  description = "Path the Route 53 health check requests through CloudFront every 30 s; it must reach the origin (GET /api/counter is cached for about a second only)."
  type        = string
  default     = "/api/counter"
}
