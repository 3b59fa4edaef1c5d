# One CloudFront distribution per public service, all with the ALB as origin. Every request is
# dynamic (REST API, login, tokens, MCP streams), so caching is disabled except for Keycloak's
# static theme resources. CloudFront adds two headers the ALB requires: X-Origin-Verify (a
# secret: requests that bypass CloudFront have no route) and X-Mcpgw-Service (which service).

data "aws_cloudfront_cache_policy" "disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_cache_policy" "optimized" {
  name = "Managed-CachingOptimized"
}

# EVERY behaviour forwards everything the services need through Managed-AllViewer: Host (so the
# services see their public name, and CloudFront checks the https-only origin's certificate
# against it: without Host it checks the ELB name, which the certificate does not cover, and
# answers 502), query strings, cookies, Authorization and the MCP headers (Mcp-Session-Id,
# Mcp-Protocol-Version, Last-Event-ID). The cached behaviours keep their small cache keys: an
# origin request policy only adds what is forwarded. The environments' tests check this.
# The registry's web console assets: the build's version is the query (`?v=<hash>`), so it is
# the whole cache key; the registry marks only the current version cacheable (immutable).
resource "aws_cloudfront_cache_policy" "console_assets" {
  name        = "${var.name_prefix}-console-assets"
  comment     = "mcpgw console assets: versioned by ?v=, compressed"
  min_ttl     = 0
  default_ttl = 0
  max_ttl     = 31536000
  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true
    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "whitelist"
      query_strings {
        items = ["v"]
      }
    }
  }
}

data "aws_cloudfront_origin_request_policy" "all_viewer" {
  name = "Managed-AllViewer"
}

data "aws_cloudfront_response_headers_policy" "security" {
  name = "Managed-SecurityHeadersPolicy"
}

locals {
  custom_domain = var.certificate_arn != ""
}

resource "aws_cloudfront_distribution" "this" {
  # checkov:skip=CKV_AWS_174:With the default *.cloudfront.net certificate AWS fixes the minimum protocol; with a custom certificate TLSv1.2_2021 is used.
  # checkov:skip=CKV_AWS_310:A single origin (the ALB, itself multi-AZ) has nothing to fail over to.
  # checkov:skip=CKV_AWS_305:These are APIs; there is no root document.
  # checkov:skip=CKV_AWS_68:WAF is attached when the environment enables it (cloudfront-custom-domain-waf); the demo mode may run without.
  # checkov:skip=CKV2_AWS_47:The WAF web ACL, when attached, includes AWSManagedRulesKnownBadInputsRuleSet (Log4j).
  # checkov:skip=CKV2_AWS_42:A custom certificate is used whenever a custom domain is configured; the demo mode uses the default domain by design.
  for_each        = var.services
  enabled         = true
  is_ipv6_enabled = true
  comment         = "${var.name_prefix} ${each.key}"
  price_class     = var.price_class
  aliases         = each.value.alias == "" ? [] : [each.value.alias]
  web_acl_id      = var.web_acl_arn == "" ? null : var.web_acl_arn
  http_version    = "http2and3"

  origin {
    origin_id   = "alb"
    domain_name = var.origin_domain_name
    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = local.custom_domain ? "https-only" : "http-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = var.origin_read_timeout_seconds
      origin_keepalive_timeout = var.origin_keepalive_timeout_seconds
    }
    custom_header {
      name  = "X-Origin-Verify"
      value = var.origin_verify_secret
    }
    custom_header {
      name  = "X-Mcpgw-Service"
      value = each.key
    }
  }

  default_cache_behavior {
    target_origin_id           = "alb"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods             = ["GET", "HEAD"]
    cache_policy_id            = data.aws_cloudfront_cache_policy.disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer.id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security.id
    # Compression would buffer server-sent events.
    compress = false
  }

  # The console's script and styles: cached by version and compressed (SSE stays uncompressed
  # in the default behaviour).
  dynamic "ordered_cache_behavior" {
    for_each = each.key == "registry" ? [1] : []
    content {
      path_pattern               = "/console/assets/*"
      target_origin_id           = "alb"
      viewer_protocol_policy     = "https-only"
      allowed_methods            = ["GET", "HEAD"]
      cached_methods             = ["GET", "HEAD"]
      cache_policy_id            = aws_cloudfront_cache_policy.console_assets.id
      origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer.id
      response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security.id
      compress                   = true
    }
  }

  # Keycloak's theme files (CSS, JS, images) are versioned in their path: safe to cache.
  dynamic "ordered_cache_behavior" {
    for_each = each.key == "keycloak" ? [1] : []
    content {
      path_pattern               = "/resources/*"
      target_origin_id           = "alb"
      viewer_protocol_policy     = "https-only"
      allowed_methods            = ["GET", "HEAD"]
      cached_methods             = ["GET", "HEAD"]
      cache_policy_id            = data.aws_cloudfront_cache_policy.optimized.id
      origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer.id
      response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security.id
      compress                   = true
    }
  }

  logging_config {
    bucket          = var.logs_bucket_domain_name
    prefix          = "cloudfront/${each.key}/"
    include_cookies = false
  }

  restrictions {
    geo_restriction {
      restriction_type = length(var.geo_allow_countries) > 0 ? "whitelist" : "none"
      locations        = var.geo_allow_countries
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = !local.custom_domain
    acm_certificate_arn            = local.custom_domain ? var.certificate_arn : null
    ssl_support_method             = local.custom_domain ? "sni-only" : null
    minimum_protocol_version       = local.custom_domain ? "TLSv1.2_2021" : "TLSv1"
  }

  tags = var.tags
}

# CloudFront's additional metrics, among them OriginLatency (the monitoring module's
# cloudfront-origin-latency alarm): billed per distribution and month.
resource "aws_cloudfront_monitoring_subscription" "this" {
  for_each        = aws_cloudfront_distribution.this
  distribution_id = each.value.id
  monitoring_subscription {
    realtime_metrics_subscription_config {
      realtime_metrics_subscription_status = "Enabled"
    }
  }
}
