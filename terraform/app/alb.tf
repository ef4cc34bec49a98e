# The origin's ALB. Only CloudFront reaches it: its security group admits nothing but the
# CloudFront origin-facing prefix list, and its listener answers 403 unless the request carries
# the secret X-Origin-Verify header that only this account's distribution adds.

# ---------------------------------------------------------------------------------------------
# Secret origin header: two slots so a rotation never has an instant where the header CloudFront
# sends (edges update over minutes) is unknown to the ALB (which updates at once).
# ---------------------------------------------------------------------------------------------

resource "random_password" "origin_verify" {
  for_each = var.origin_verify_secret_versions

  length  = 48
  special = false

  keepers = {
    version = each.value
  }
}

resource "aws_secretsmanager_secret" "origin_verify" {
  #checkov:skip=CKV2_AWS_57:Rotated by Terraform through the two-slot scheme (origin_verify_secret_versions), not by a Lambda.
  #checkov:skip=CKV_AWS_149:The AWS-managed key suffices: the same value is in the CloudFront configuration and the Terraform state (KMS-encrypted bucket).
  name        = "${local.name}/origin-verify"
  description = "X-Origin-Verify header values (slots a/b) that CloudFront sends and the ALB requires"
  # 0 (delete at once) only for scripts/teardown.sh: a 7-day window would keep the name taken and
  # make the next deployment in this account fail to create it.
  recovery_window_in_days = var.teardown ? 0 : 7
}

resource "aws_secretsmanager_secret_version" "origin_verify" {
  secret_id = aws_secretsmanager_secret.origin_verify.id
  secret_string = jsonencode({
    header = "X-Origin-Verify"
    active = var.origin_verify_active
    values = { for slot, password in random_password.origin_verify : slot => password.result }
  })
}

# ---------------------------------------------------------------------------------------------
# Security groups
# ---------------------------------------------------------------------------------------------

data "aws_ec2_managed_prefix_list" "cloudfront_origin_facing" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Counter Service ALB: CloudFront origin-facing addresses in, origin pods out"
  vpc_id      = local.infra.vpc_id

  tags = {
    Name = "${local.name}-alb"
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "CloudFront origin-facing servers only"
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront_origin_facing.id
  ip_protocol       = "tcp"
  from_port         = local.origin_https ? 443 : 80
  to_port           = local.origin_https ? 443 : 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_origin" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Origin pods (target type ip) and their health checks"
  referenced_security_group_id = local.infra.node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = local.origin_port
  to_port                      = local.origin_port
}

# The TargetGroupBinding's networking rule opens the same port on the cluster security group;
# this rule makes reachability independent of the controller and visible in the plan.
resource "aws_vpc_security_group_ingress_rule" "origin_from_alb" {
  security_group_id            = local.infra.node_security_group_id
  description                  = "Counter Service ALB to the origin pods"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.origin_port
  to_port                      = local.origin_port
}

# ---------------------------------------------------------------------------------------------
# Load balancer, listener, target group
# ---------------------------------------------------------------------------------------------

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:On by default (alb_deletion_protection true, teardown false); checkov cannot evaluate the expression, terraform/tests asserts it.
  #checkov:skip=CKV2_AWS_28:The WAF sits on CloudFront, the only client this ALB admits (prefix list + secret header).
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = local.infra.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection && !var.teardown

  # NOTE: 60 s, below the origin's KEEPALIVE_IDLE_TIMEOUT_S (75 s): the origin never closes a
  # connection the ALB still considers reusable. CloudFront's origin keep-alive is below this one.
  idle_timeout = 60

  # The module's output waits for the bucket policy: the ALB checks it may write there on creation.
  access_logs {
    bucket  = module.logs_bucket.bucket
    prefix  = "alb"
    enabled = true
  }
}

resource "aws_lb_target_group" "origin" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ALB to pod traffic stays inside the VPC and the origin serves plain HTTP on 8080 (no certificates to distribute to pods).
  name                          = var.target_group_name
  target_type                   = "ip"
  port                          = 8080
  protocol                      = "HTTP"
  protocol_version              = "HTTP1"
  vpc_id                        = local.infra.vpc_id
  load_balancing_algorithm_type = "least_outstanding_requests"

  # 30 s for in-flight requests to finish after a pod is deregistered; the pods' preStop sleep
  # (manifests/) is at least this long, so they keep serving until the ALB has stopped sending.
  deregistration_delay = 30

  # Readiness, not liveness: /readyz turns 503 while a pod drains or when its store is silent.
  health_check {
    path                = "/readyz"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "this" {
  #checkov:skip=CKV_AWS_2:HTTP only when no origin_domain_name is set (no certificate can cover the ALB's own name); set it for HTTPS (README).
  #checkov:skip=CKV_AWS_103:TLS 1.2+ policy applies when the listener is HTTPS (origin_domain_name set).
  #checkov:skip=CKV2_AWS_20:No redirect: the only client is CloudFront, which uses the one protocol this listener serves.
  load_balancer_arn = aws_lb.this.arn
  port              = local.origin_https ? 443 : 80
  protocol          = local.origin_https ? "HTTPS" : "HTTP"
  ssl_policy        = local.origin_https ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  certificate_arn   = var.origin_certificate_arn

  # Anything that reaches the ALB without the secret header did not come through CloudFront.
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ error = "forbidden" })
      status_code  = "403"
    }
  }
}

resource "aws_lb_listener_rule" "from_cloudfront" {
  listener_arn = aws_lb_listener.this.arn
  priority     = 1

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.origin.arn
  }

  condition {
    http_header {
      http_header_name = "X-Origin-Verify"
      values           = [for slot in sort(keys(random_password.origin_verify)) : random_password.origin_verify[slot].result]
    }
  }
}

resource "aws_route53_record" "origin" {
  count = var.route53_zone_id != null && local.origin_https ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.origin_domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = false
  }
}
