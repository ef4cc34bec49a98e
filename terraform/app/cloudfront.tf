# CloudFront, built from edge/cloudfront.json and edge/functions/*.js. Every cache policy, origin
# request policy, the response headers policy, every function and every behaviour comes from that
# data (terraform/tests asserts that nothing it defines is hard-coded or left unwired); this file
# only adds what is about the ALB origin: protocol, timeouts, the secret header, logging, WAF.

locals {
  origin_id = "alb"

  # Name CloudFront connects to: the certificate's name when HTTPS, the ALB's own otherwise.
  origin_domain = local.origin_https ? var.origin_domain_name : aws_lb.this.dns_name

  security_headers = local.edge.response_headers_policy.security_headers
}

resource "aws_cloudfront_cache_policy" "this" {
  for_each = local.edge.cache_policies

  name        = "${local.name}-${each.key}"
  comment     = substr(each.value.comment, 0, 128)
  min_ttl     = each.value.min_ttl
  default_ttl = each.value.default_ttl
  max_ttl     = each.value.max_ttl

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = each.value.gzip
    enable_accept_encoding_brotli = each.value.brotli

    cookies_config {
      cookie_behavior = each.value.cookies
    }

    headers_config {
      header_behavior = length(each.value.headers) > 0 ? "whitelist" : "none"

      dynamic "headers" {
        for_each = length(each.value.headers) > 0 ? [each.value.headers] : []

        content {
          items = headers.value
        }
      }
    }

    query_strings_config {
      query_string_behavior = each.value.query_strings
    }
  }
}

resource "aws_cloudfront_origin_request_policy" "this" {
  for_each = local.edge.origin_request_policies

  name    = "${local.name}-${each.key}"
  comment = substr(each.value.comment, 0, 128)

  cookies_config {
    cookie_behavior = each.value.cookies
  }

  headers_config {
    header_behavior = length(each.value.headers) > 0 ? "whitelist" : "none"

    dynamic "headers" {
      for_each = length(each.value.headers) > 0 ? [each.value.headers] : []

      content {
        items = headers.value
      }
    }
  }

  query_strings_config {
    query_string_behavior = each.value.query_strings
  }
}

resource "aws_cloudfront_response_headers_policy" "this" {
  #checkov:skip=CKV_AWS_259:HSTS values come from edge/cloudfront.json; preload is the domain owner's commitment and cannot apply to the *.cloudfront.net name.
  name    = "${local.name}-${local.edge.response_headers_policy.name}"
  comment = substr(local.edge.response_headers_policy.comment, 0, 128)

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = local.security_headers.strict_transport_security.access_control_max_age_sec
      include_subdomains         = local.security_headers.strict_transport_security.include_subdomains
      preload                    = local.security_headers.strict_transport_security.preload
      override                   = local.security_headers.strict_transport_security.override
    }

    content_security_policy {
      content_security_policy = local.security_headers.content_security_policy.content_security_policy
      override                = local.security_headers.content_security_policy.override
    }

    content_type_options {
      override = local.security_headers.content_type_options.override
    }

    frame_options {
      frame_option = local.security_headers.frame_options.frame_option
      override     = local.security_headers.frame_options.override
    }

    referrer_policy {
      referrer_policy = local.security_headers.referrer_policy.referrer_policy
      override        = local.security_headers.referrer_policy.override
    }
  }
}

resource "aws_cloudfront_function" "this" {
  for_each = local.edge.functions

  name    = "${local.name}-${each.key}"
  runtime = each.value.runtime
  comment = substr(each.value.comment, 0, 128)
  code    = file("${local.edge_dir}/${each.value.source}")
  publish = true
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_174:With no aliases the *.cloudfront.net certificate is used and its TLS floor is CloudFront's; with aliases minimum_protocol_version is TLSv1.2_2021.
  #checkov:skip=CKV2_AWS_42:A custom certificate needs a domain of the operator's (aliases + viewer_certificate_arn); without one the default certificate is the only option.
  #checkov:skip=CKV_AWS_305:The viewer-request function maps / to /index.html (edge/), which is what a default root object would do.
  #checkov:skip=CKV_AWS_310:One origin: the ALB spans every AZ; a failover origin would have to be a second deployment of the service.
  #checkov:skip=CKV_AWS_374:The counter is a public page; no geography is excluded.
  #checkov:skip=CKV_AWS_68:The WAF web ACL is attached when waf_rate_limit is set (the default); null turns it off deliberately.
  #checkov:skip=CKV2_AWS_46:The origin is the ALB, not an S3 bucket (the bucket only receives logs).
  #checkov:skip=CKV2_AWS_47:The web ACL includes AWSManagedRulesKnownBadInputsRuleSet (Log4j) when enabled; see CKV_AWS_68.
  enabled         = true
  comment         = "${local.name}: page, assets and /api/counter"
  is_ipv6_enabled = true
  http_version    = "http2and3"
  price_class     = var.price_class
  aliases         = var.aliases
  web_acl_id      = var.waf_rate_limit == null ? null : aws_wafv2_web_acl.this[0].arn

  origin {
    origin_id   = local.origin_id
    domain_name = local.origin_domain

    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = local.origin_https ? "https-only" : "http-only"
      origin_ssl_protocols   = ["TLSv1.2"]

      # NOTE: keep-alive 50 s < ALB idle timeout 60 s < origin keep-alive 75 s, so at each hop the
      # client side gives up on an idle connection before the server side closes it.
      origin_keepalive_timeout = 50

      # Above the origin's REQUEST_TIMEOUT_MS (5 s): the origin's own JSON 503/504 (with
      # Retry-After) reaches the viewer instead of a CloudFront timeout page.
      origin_read_timeout = 10
    }

    custom_header {
      name  = "X-Origin-Verify"
      value = random_password.origin_verify[var.origin_verify_active].result
    }

    dynamic "origin_shield" {
      for_each = var.origin_shield_region == null ? [] : [var.origin_shield_region]

      content {
        enabled              = true
        origin_shield_region = origin_shield.value
      }
    }
  }

  default_cache_behavior {
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    compress                   = true
    allowed_methods            = local.edge.default_behavior.allowed_methods
    cached_methods             = local.edge.default_behavior.cached_methods
    cache_policy_id            = aws_cloudfront_cache_policy.this[local.edge.default_behavior.cache_policy].id
    origin_request_policy_id   = try(aws_cloudfront_origin_request_policy.this[local.edge.default_behavior.origin_request_policy].id, null)
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

    dynamic "function_association" {
      for_each = local.edge.default_behavior.functions

      content {
        event_type   = local.edge.functions[function_association.value].event_type
        function_arn = aws_cloudfront_function.this[function_association.value].arn
      }
    }
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.edge.ordered_behaviors
    iterator = behavior

    content {
      path_pattern               = behavior.value.path_pattern
      target_origin_id           = local.origin_id
      viewer_protocol_policy     = "redirect-to-https"
      compress                   = true
      allowed_methods            = behavior.value.allowed_methods
      cached_methods             = behavior.value.cached_methods
      cache_policy_id            = aws_cloudfront_cache_policy.this[behavior.value.cache_policy].id
      origin_request_policy_id   = try(aws_cloudfront_origin_request_policy.this[behavior.value.origin_request_policy].id, null)
      response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

      dynamic "function_association" {
        for_each = behavior.value.functions

        content {
          event_type   = local.edge.functions[function_association.value].event_type
          function_arn = aws_cloudfront_function.this[function_association.value].arn
        }
      }
    }
  }

  # CloudFront caches origin 5xx for 10 s by default; an outage blip must not be pinned at the
  # edge (stale-if-error from the origin's Cache-Control keeps serving the last good read).
  dynamic "custom_error_response" {
    for_each = [500, 502, 503, 504]

    content {
      error_code            = custom_error_response.value
      error_caching_min_ttl = 0
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.viewer_certificate_arn == null
    acm_certificate_arn            = var.viewer_certificate_arn
    ssl_support_method             = var.viewer_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.viewer_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }

  logging_config {
    bucket          = aws_s3_bucket.logs.bucket_domain_name
    prefix          = "cloudfront/"
    include_cookies = false
  }

  # Standard logging writes through the bucket ACL: ownership controls must be in place first.
  depends_on = [module.logs_bucket]
}
