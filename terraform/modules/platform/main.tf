# The whole platform: network, images, databases, secrets, the four ECS services and the
# one-off setup task, the ALB, and, depending on the mode, CloudFront, Route 53 + ACM and WAF;
# monitoring last. The three environments differ only in the edge-mode variables.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name_prefix = "${var.project}-${var.environment}"
  tags        = merge(var.tags, { Project = var.project, Environment = var.environment, ManagedBy = "terraform" })
  region      = data.aws_region.current.name
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition

  services       = ["registry", "auth-server", "gateway", "keycloak"]
  custom_domain  = var.domain_name != ""
  build_platform = !var.certificates_only
  fqdn           = { for s in local.services : s => local.custom_domain ? "${var.host_labels[s]}.${var.domain_name}" : "" }
  # The URLs everyone uses: the custom host names, else CloudFront's default domains.
  public_host = {
    for s in local.services : s => local.custom_domain ? local.fqdn[s] : (local.build_platform ? module.cloudfront[0].domain_names[s] : "")
  }
  url = { for s in local.services : s => "https://${local.public_host[s]}" }

  namespace        = "${local.name_prefix}.internal"
  registry_inside  = "http://registry.${local.namespace}:7860"
  auth_inside      = "http://auth-server.${local.namespace}:7870"
  keycloak_issuer  = "${local.url["keycloak"]}/realms/${var.keycloak_realm}"
  secret_arn_base  = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret"
  web_client_id    = "mcpgw-web"
  oidc_secret_name = "${var.secret_prefix}/keycloak/clients/${local.web_client_id}"
  gateway_key_name = "${var.secret_prefix}/registry/gateway-api-key"
  # The two secrets setup owns but Terraform creates first (first-deployment.tf): their exact
  # ARNs, taken from the secret versions, so a task role and a service exist only once its
  # secret holds a value.
  oidc_secret_arn        = aws_secretsmanager_secret_version.web_client.arn
  gateway_key_secret_arn = aws_secretsmanager_secret_version.gateway_key.arn

  image = { for k, t in var.image_tags : k => startswith(t, "sha256:") ? "${module.ecr.repository_urls[k]}@${t}" : "${module.ecr.repository_urls[k]}:${t}" }

  # How many proxies append to X-Forwarded-For before a request reaches the auth-server.
  proxy_hops  = var.enable_cloudfront ? 2 : 1
  data_dir    = "/var/lib/mcpgw"
  waf_enabled = var.enable_waf && local.build_platform
}

# Modes that cannot work are refused at plan time with a reason.
resource "terraform_data" "mode_check" {
  input = "${var.enable_cloudfront}-${local.custom_domain}"
  lifecycle {
    precondition {
      condition     = var.enable_cloudfront || local.custom_domain
      error_message = "Set domain_name (custom domain) or enable_cloudfront (CloudFront default domains): without either the services have no HTTPS address."
    }
    precondition {
      condition     = !local.custom_domain || var.route53_zone_id != ""
      error_message = "domain_name needs route53_zone_id (the hosted zone the records and certificate validation go in)."
    }
    precondition {
      condition     = !var.certificates_only || local.custom_domain
      error_message = "certificates_only applies only with a custom domain (there is no certificate otherwise)."
    }
  }
}

# --- foundation -------------------------------------------------------------------------------

module "secrets" {
  source               = "../secrets"
  name_prefix          = local.name_prefix
  secret_prefix        = var.secret_prefix
  recovery_window_days = var.throwaway ? 0 : 30
  tags                 = local.tags
}

module "logs_bucket" {
  source        = "../logs-bucket"
  name_prefix   = local.name_prefix
  force_destroy = var.throwaway
  tags          = local.tags
}

module "network" {
  source             = "../network"
  name_prefix        = local.name_prefix
  vpc_cidr           = var.vpc_cidr
  az_count           = var.az_count
  single_nat_gateway = var.single_nat_gateway
  kms_key_arn        = module.secrets.kms_key_arn
  tags               = local.tags
}

module "ecr" {
  source       = "../ecr"
  name_prefix  = local.name_prefix
  repositories = ["registry", "auth-server", "gateway", "setup", "keycloak", "db-init"]
  kms_key_arn  = module.secrets.kms_key_arn
  force_delete = var.throwaway
  tags         = local.tags
}

module "cluster" {
  source      = "../ecs-cluster"
  name_prefix = local.name_prefix
  vpc_id      = module.network.vpc_id
  namespace   = local.namespace
  kms_key_arn = module.secrets.kms_key_arn
  tags        = local.tags
}

# --- certificates and DNS ---------------------------------------------------------------------

module "dns" {
  count                  = local.custom_domain ? 1 : 0
  source                 = "../dns"
  zone_id                = var.route53_zone_id
  hostnames              = local.fqdn
  cloudfront_certificate = var.enable_cloudfront
  create_records         = local.build_platform
  alias_targets = local.build_platform ? {
    for s in local.services : s => var.enable_cloudfront ? {
      dns_name = module.cloudfront[0].domain_names[s]
      zone_id  = module.cloudfront[0].hosted_zone_id
      } : {
      dns_name = module.alb[0].dns_name
      zone_id  = module.alb[0].zone_id
    }
  } : {}
  tags = local.tags
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }
}

# --- databases ------------------------------------------------------------------------------

module "aurora" {
  count          = local.build_platform ? 1 : 0
  source         = "../aurora"
  name_prefix    = local.name_prefix
  vpc_id         = module.network.vpc_id
  subnet_ids     = module.network.private_subnet_ids
  database_name  = "mcpgw_auth"
  min_acu        = var.aurora_min_acu
  max_acu        = var.aurora_max_acu
  instance_count = var.aurora_instance_count
  client_security_group_ids = {
    auth-server = module.auth_server[0].security_group_id
    keycloak    = module.keycloak[0].security_group_id
    setup       = module.setup[0].security_group_id
  }
  backup_retention_days = var.backup_retention_days
  deletion_protection   = var.deletion_protection
  kms_key_arn           = module.secrets.kms_key_arn
  tags                  = local.tags
}

module "documentdb" {
  count          = local.build_platform ? 1 : 0
  source         = "../documentdb"
  name_prefix    = local.name_prefix
  secret_prefix  = var.secret_prefix
  vpc_id         = module.network.vpc_id
  subnet_ids     = module.network.private_subnet_ids
  instance_class = var.documentdb_instance_class
  instance_count = var.documentdb_instance_count
  client_security_group_ids = {
    registry = module.registry[0].security_group_id
    setup    = module.setup[0].security_group_id
  }
  backup_retention_days = var.backup_retention_days
  deletion_protection   = var.deletion_protection
  ca_file_path          = var.rds_ca_bundle_path
  recovery_window_days  = var.throwaway ? 0 : 30
  kms_key_arn           = module.secrets.kms_key_arn
  tags                  = local.tags
}

# --- edge -------------------------------------------------------------------------------------

module "alb" {
  count                = local.build_platform ? 1 : 0
  source               = "../alb"
  name_prefix          = local.name_prefix
  vpc_id               = module.network.vpc_id
  vpc_cidr             = module.network.vpc_cidr
  public_subnet_ids    = module.network.public_subnet_ids
  https                = local.custom_domain
  certificate_arn      = local.custom_domain ? module.dns[0].regional_certificate_arn : ""
  cloudfront_origin    = var.enable_cloudfront
  origin_verify_secret = module.secrets.origin_verify_secret
  ingress_cidr_blocks  = var.ingress_cidr_blocks
  nat_cidr_blocks      = [for ip in module.network.nat_public_ips : "${ip}/32"]
  admin_cidr_blocks    = concat(var.keycloak_admin_cidr_blocks, [for ip in module.network.nat_public_ips : "${ip}/32"])
  services = {
    registry    = { target_group_arn = module.registry[0].target_group_arn, hostnames = [local.fqdn["registry"]] }
    auth-server = { target_group_arn = module.auth_server[0].target_group_arn, hostnames = [local.fqdn["auth-server"]] }
    gateway     = { target_group_arn = module.gateway[0].target_group_arn, hostnames = [local.fqdn["gateway"]] }
    keycloak    = { target_group_arn = module.keycloak[0].target_group_arn, hostnames = [local.fqdn["keycloak"]] }
  }
  access_logs_bucket  = module.logs_bucket.bucket_id
  deletion_protection = var.deletion_protection
  tags                = local.tags
}

module "waf_cloudfront" {
  count            = local.waf_enabled && var.enable_cloudfront ? 1 : 0
  source           = "../waf"
  name_prefix      = local.name_prefix
  scope            = "CLOUDFRONT"
  rate_limit       = var.waf_rate_limit
  login_rate_limit = var.waf_login_rate_limit
  # The auth-server reaches Keycloak's token endpoint through its public URL (every sign-in).
  login_rate_exempt_cidr_blocks = [for ip in module.network.nat_public_ips : "${ip}/32"]
  enable_bot_control            = var.waf_bot_control
  admin_host                    = local.fqdn["keycloak"]
  admin_cidr_blocks             = concat(var.keycloak_admin_cidr_blocks, [for ip in module.network.nat_public_ips : "${ip}/32"])
  log_destination_arn           = module.logs_bucket.bucket_arn
  tags                          = local.tags
  providers = {
    aws = aws.us_east_1
  }
}

module "waf_regional" {
  count            = local.waf_enabled && !var.enable_cloudfront ? 1 : 0
  source           = "../waf"
  name_prefix      = local.name_prefix
  scope            = "REGIONAL"
  alb_arn          = module.alb[0].arn
  rate_limit       = var.waf_rate_limit
  login_rate_limit = var.waf_login_rate_limit
  # The auth-server reaches Keycloak's token endpoint through its public URL (every sign-in).
  login_rate_exempt_cidr_blocks = [for ip in module.network.nat_public_ips : "${ip}/32"]
  enable_bot_control            = var.waf_bot_control
  log_destination_arn           = module.logs_bucket.bucket_arn
  tags                          = local.tags
}

module "cloudfront" {
  count                       = var.enable_cloudfront && local.build_platform ? 1 : 0
  source                      = "../cloudfront"
  name_prefix                 = local.name_prefix
  services                    = { for s in local.services : s => { alias = local.fqdn[s] } }
  origin_domain_name          = module.alb[0].dns_name
  origin_verify_secret        = module.secrets.origin_verify_secret
  certificate_arn             = local.custom_domain ? module.dns[0].cloudfront_certificate_arn : ""
  web_acl_arn                 = local.waf_enabled ? module.waf_cloudfront[0].web_acl_arn : ""
  origin_read_timeout_seconds = var.cloudfront_origin_read_timeout_seconds
  geo_allow_countries         = var.geo_allow_countries
  logs_bucket_domain_name     = module.logs_bucket.bucket_domain_name
  tags                        = local.tags
}
