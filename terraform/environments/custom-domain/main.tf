# Mode 2, custom domain only: Route 53 names and ACM certificates, the ALB answers directly (no
# CloudFront). For controlled internal deployments: restrict ingress_cidr_blocks to office and VPN
# ranges. A regional WAF web ACL protects the ALB.

module "platform" {
  source = "../../modules/platform"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  environment                = var.environment
  secret_prefix              = var.secret_prefix
  image_tags                 = var.image_tags
  enable_cloudfront          = false
  enable_waf                 = true
  domain_name                = var.domain_name
  route53_zone_id            = var.route53_zone_id
  certificates_only          = var.certificates_only
  ingress_cidr_blocks        = var.ingress_cidr_blocks
  keycloak_admin_cidr_blocks = var.keycloak_admin_cidr_blocks
  alarm_email                = var.alarm_email
  runbook_base_url           = var.runbook_base_url
  deletion_protection        = var.deletion_protection
  single_nat_gateway         = var.single_nat_gateway
  throwaway                  = var.throwaway
  tags                       = var.tags
}
