# Alarms, dashboard, alarm topic and log metric filters (module ../monitoring).

locals {
  service_modules = local.build_platform ? {
    registry    = module.registry[0]
    auth-server = module.auth_server[0]
    gateway     = module.gateway[0]
    keycloak    = module.keycloak[0]
  } : {}
  # CloudWatch alarms see only metrics of their own region: a CLOUDFRONT-scope web ACL publishes
  # in us-east-1, so its alarm exists only when the platform runs there (see README.md).
  waf_name = (
    !local.waf_enabled ? "" :
    !var.enable_cloudfront ? module.waf_regional[0].web_acl_name :
    local.region == "us-east-1" ? module.waf_cloudfront[0].web_acl_name : ""
  )
}

module "monitoring" {
  count                       = local.build_platform ? 1 : 0
  source                      = "../monitoring"
  name_prefix                 = local.name_prefix
  alb_arn_suffix              = module.alb[0].arn_suffix
  target_group_arn_suffixes   = { for k, m in local.service_modules : k => m.target_group_arn_suffix }
  ecs_cluster_name            = module.cluster.cluster_name
  ecs_service_names           = { for k, m in local.service_modules : k => m.service_name }
  aurora_cluster_id           = module.aurora[0].cluster_id
  documentdb_cluster_id       = module.documentdb[0].cluster_id
  waf_web_acl_name            = local.waf_name
  waf_region                  = local.waf_name == "" ? "" : (var.enable_cloudfront ? "us-east-1" : local.region)
  cloudfront_distribution_ids = var.enable_cloudfront && local.build_platform ? module.cloudfront[0].distribution_ids : {}
  log_group_names             = { for k, m in local.service_modules : k => m.log_group_name }
  alarm_email                 = var.alarm_email
  runbook_base_url            = var.runbook_base_url
  kms_key_arn                 = module.secrets.kms_key_arn
  tags                        = local.tags
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }
}
