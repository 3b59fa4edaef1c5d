# Mode 3, CloudFront + custom domain + WAF: the production model. Route 53 names point at
# CloudFront, which carries the WAF web ACL and reaches the ALB over HTTPS with a secret header the
# ALB requires.

module "platform" {
  source = "../../modules/platform"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  environment                = var.environment
  secret_prefix              = var.secret_prefix
  image_tags                 = var.image_tags
  enable_cloudfront          = true
  enable_waf                 = true
  domain_name                = var.domain_name
  route53_zone_id            = var.route53_zone_id
  certificates_only          = var.certificates_only
  geo_allow_countries        = var.geo_allow_countries
  keycloak_admin_cidr_blocks = var.keycloak_admin_cidr_blocks
  alarm_email                = var.alarm_email
  runbook_base_url           = var.runbook_base_url
  deletion_protection        = var.deletion_protection
  single_nat_gateway         = var.single_nat_gateway
  throwaway                  = var.throwaway
  tags                       = var.tags
}
