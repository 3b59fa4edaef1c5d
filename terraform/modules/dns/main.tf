# Route 53 records for the platform's host names and the ACM certificates they need, validated
# through DNS: one in the platform's region (for the ALB) and, with CloudFront, one in us-east-1.
# Stage 5 of a first deployment applies the certificates first (see terraform/README.md), so the
# rest does not wait on validation inside one long apply.

locals {
  names = sort(values(var.hostnames))
  # Every name the ALB answers to (CloudFront connects with the viewer's Host header).
  primary = local.names[0]
  sans    = slice(local.names, 1, length(local.names))
}

resource "aws_acm_certificate" "regional" {
  domain_name               = local.primary
  subject_alternative_names = local.sans
  validation_method         = "DNS"
  tags                      = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate" "cloudfront" {
  count                     = var.cloudfront_certificate ? 1 : 0
  provider                  = aws.us_east_1
  domain_name               = local.primary
  subject_alternative_names = local.sans
  validation_method         = "DNS"
  tags                      = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

# Both certificates name the same hosts, so they share validation records: one per name. Keyed
# by the (known) service names so the plan does not wait for the certificate's attributes.
locals {
  validation = { for o in aws_acm_certificate.regional.domain_validation_options : o.domain_name => o }
}

resource "aws_route53_record" "validation" {
  for_each        = var.hostnames
  zone_id         = var.zone_id
  name            = local.validation[each.value].resource_record_name
  type            = local.validation[each.value].resource_record_type
  records         = [local.validation[each.value].resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "regional" {
  certificate_arn         = aws_acm_certificate.regional.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_acm_certificate_validation" "cloudfront" {
  count                   = var.cloudfront_certificate ? 1 : 0
  provider                = aws.us_east_1
  certificate_arn         = aws_acm_certificate.cloudfront[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

# A and AAAA aliases per host name, to CloudFront or to the ALB.
resource "aws_route53_record" "alias" {
  for_each = {
    for pair in setproduct(keys(var.hostnames), ["A", "AAAA"]) : "${pair[0]}-${pair[1]}" => {
      service = pair[0]
      type    = pair[1]
    }
    if var.create_records
  }
  zone_id = var.zone_id
  name    = var.hostnames[each.value.service]
  type    = each.value.type
  alias {
    name                   = var.alias_targets[each.value.service].dns_name
    zone_id                = var.alias_targets[each.value.service].zone_id
    evaluate_target_health = false
  }
}
