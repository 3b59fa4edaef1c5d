# The names below are a contract: mcpgw-setup reads them from `terraform output -json`
# (docs/deployment.md). Every value is a string.

output "environment" {
  description = "dev, staging or prod."
  value       = var.environment
}

output "aws_region" {
  description = "Region of the platform (and of its secrets)."
  value       = local.region
}

output "keycloak_url" {
  description = "Keycloak's public base URL."
  value       = local.build_platform ? local.url["keycloak"] : ""
}

output "keycloak_admin_secret_id" {
  description = "Secret with Keycloak's admin credentials, JSON {username, password}."
  value       = module.secrets.keycloak_admin_secret_name
}

output "registry_url" {
  description = "The registry's public URL."
  value       = local.build_platform ? local.url["registry"] : ""
}

output "gateway_url" {
  description = "The gateway's public URL (MCP endpoints)."
  value       = local.build_platform ? local.url["gateway"] : ""
}

output "auth_server_url" {
  description = "The auth-server's public URL."
  value       = local.build_platform ? local.url["auth-server"] : ""
}

output "documentdb_endpoint" {
  description = "DocumentDB cluster endpoint, host:port."
  value       = local.build_platform ? module.documentdb[0].endpoint : ""
}

output "documentdb_secret_id" {
  description = "Secret with the DocumentDB master credentials, JSON {username, password}."
  value       = local.build_platform ? module.documentdb[0].master_secret_name : ""
}

output "documentdb_database" {
  description = "The registry's database."
  value       = "mcpgw_registry"
}

output "aurora_endpoint" {
  description = "Aurora writer endpoint, host:port."
  value       = local.build_platform ? module.aurora[0].endpoint : ""
}

output "aurora_secret_id" {
  description = "ARN of the RDS-managed Aurora master secret, JSON {username, password}."
  value       = local.aurora_secret_arn
}

output "aurora_database" {
  description = "The auth-server's database."
  value       = "mcpgw_auth"
}

output "secret_prefix" {
  description = "Prefix of the secrets mcpgw-setup creates."
  value       = var.secret_prefix
}

output "setup_run_task_command" {
  description = "Runs mcpgw-setup once as an ECS task in the private subnets; append arguments with --overrides (see README.md)."
  value = local.build_platform ? join(" ", [
    "aws ecs run-task",
    "--region ${local.region}",
    "--cluster ${module.cluster.cluster_name}",
    "--launch-type FARGATE",
    "--task-definition ${module.setup[0].task_definition_family}",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", module.network.private_subnet_ids)}],securityGroups=[${module.setup[0].security_group_id}],assignPublicIp=DISABLED}'",
  ]) : ""
}

# --- for operators (not read by mcpgw-setup) --------------------------------------------------

output "ecr_repository_urls" {
  description = "Where to push each image (tags are immutable)."
  value       = module.ecr.repository_urls
}

output "ecs_cluster_name" {
  description = "ECS cluster of the services."
  value       = module.cluster.cluster_name
}

output "alb_dns_name" {
  description = "DNS name of the ALB."
  value       = local.build_platform ? module.alb[0].dns_name : ""
}

output "cloudfront_domain_names" {
  description = "CloudFront default domain per service (empty map without CloudFront)."
  value       = var.enable_cloudfront && local.build_platform ? module.cloudfront[0].domain_names : {}
}

output "nat_public_ips" {
  description = "Egress addresses of the platform (allow-list them at MCP servers that filter by IP)."
  value       = module.network.nat_public_ips
}

output "log_group_names" {
  description = "CloudWatch log group per service and of the setup task."
  value       = merge({ for k, m in local.service_modules : k => m.log_group_name }, local.build_platform ? { setup = module.setup[0].log_group_name } : {})
}

output "access_logs_bucket" {
  description = "S3 bucket with ALB, CloudFront and WAF logs."
  value       = module.logs_bucket.bucket_id
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms (subscribe a pager or chat integration)."
  value       = local.build_platform ? module.monitoring[0].sns_topic_arn : ""
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the platform."
  value       = local.build_platform ? module.monitoring[0].dashboard_name : ""
}

output "ecr_registry" {
  description = "The ECR registry host the images are pushed to (<account>.dkr.ecr.<region>.amazonaws.com)."
  value       = "${local.account_id}.dkr.ecr.${local.region}.amazonaws.com"
}

output "ecr_repository_prefix" {
  description = "Prefix of the repository names (<prefix>/<image>): what make build-push and the pipeline push to."
  value       = local.name_prefix
}

output "ecs_service_names" {
  description = "ECS service name per service (scripts/run-setup-task.sh redeploys the gateway)."
  value       = { for k, m in local.service_modules : k => m.service_name }
}
