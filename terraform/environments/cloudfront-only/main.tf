# Mode 1, CloudFront only: the services answer on CloudFront's default *.cloudfront.net domains. No
# domain or certificate to prepare: for a proof of concept, a demo or a sandbox; WAF is off by
# default (enable_waf = true adds it).

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
  enable_waf                 = var.enable_waf
  domain_name                = ""
  geo_allow_countries        = var.geo_allow_countries
  keycloak_admin_cidr_blocks = var.keycloak_admin_cidr_blocks
  alarm_email                = var.alarm_email
  runbook_base_url           = var.runbook_base_url
  deletion_protection        = var.deletion_protection
  single_nat_gateway         = var.single_nat_gateway
  throwaway                  = var.throwaway
  tags                       = var.tags
}
