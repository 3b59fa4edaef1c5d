# mcpgw-setup reads these names from `terraform output -json` (docs/deployment.md).

output "environment" {
  description = "dev, staging or prod."
  value       = module.platform.environment
}

output "aws_region" {
  description = "Region of the platform and its secrets."
  value       = module.platform.aws_region
}

output "keycloak_url" {
  description = "Keycloak's public base URL."
  value       = module.platform.keycloak_url
}

output "keycloak_admin_secret_id" {
  description = "Secret with Keycloak's admin credentials, JSON {username, password}."
  value       = module.platform.keycloak_admin_secret_id
}

output "registry_url" {
  description = "The registry's public URL."
  value       = module.platform.registry_url
}

output "gateway_url" {
  description = "The gateway's public URL."
  value       = module.platform.gateway_url
}

output "auth_server_url" {
  description = "The auth-server's public URL."
  value       = module.platform.auth_server_url
}

output "documentdb_endpoint" {
  description = "DocumentDB endpoint, host:port."
  value       = module.platform.documentdb_endpoint
}

output "documentdb_secret_id" {
  description = "Secret with the DocumentDB master credentials, JSON {username, password}."
  value       = module.platform.documentdb_secret_id
}

output "documentdb_database" {
  description = "The registry's database."
  value       = module.platform.documentdb_database
}

output "aurora_endpoint" {
  description = "Aurora writer endpoint, host:port."
  value       = module.platform.aurora_endpoint
}

output "aurora_secret_id" {
  description = "RDS-managed Aurora master secret ARN, JSON {username, password}."
  value       = module.platform.aurora_secret_id
}

output "aurora_database" {
  description = "The auth-server's database."
  value       = module.platform.aurora_database
}

output "secret_prefix" {
  description = "Prefix of the secrets mcpgw-setup creates."
  value       = module.platform.secret_prefix
}

output "setup_run_task_command" {
  description = "Runs mcpgw-setup once as an ECS task in the private subnets."
  value       = module.platform.setup_run_task_command
}

output "ecr_repository_urls" {
  description = "Where to push each image."
  value       = module.platform.ecr_repository_urls
}

output "nat_public_ips" {
  description = "Egress addresses of the platform."
  value       = module.platform.nat_public_ips
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.platform.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the platform."
  value       = module.platform.dashboard_name
}

output "ecr_registry" {
  description = "The ECR registry host."
  value       = module.platform.ecr_registry
}

output "ecr_repository_prefix" {
  description = "Prefix of the repository names (<prefix>/<image>)."
  value       = module.platform.ecr_repository_prefix
}

output "ecs_cluster_name" {
  description = "ECS cluster of the services."
  value       = module.platform.ecs_cluster_name
}

output "ecs_service_names" {
  description = "ECS service name per service."
  value       = module.platform.ecs_service_names
}

output "log_group_names" {
  description = "CloudWatch log group per service and of the setup task."
  value       = module.platform.log_group_names
}
