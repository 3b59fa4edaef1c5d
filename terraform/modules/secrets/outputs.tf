output "kms_key_arn" {
  description = "ARN of the platform KMS key."
  value       = aws_kms_key.this.arn
}

output "kms_key_id" {
  description = "ID of the platform KMS key."
  value       = aws_kms_key.this.key_id
}

output "registry_encryption_key_secret_arn" {
  description = "Secret with the registry's sealing key (also the gateway's secrets.sealing_key)."
  value       = aws_secretsmanager_secret.key["registry_encryption_key"].arn
}

output "auth_server_encryption_key_secret_arn" {
  description = "Secret with the auth-server's sealing key."
  value       = aws_secretsmanager_secret.key["auth_server_encryption_key"].arn
}

output "gateway_session_key_secret_arn" {
  description = "Secret with the gateway's session-id sealing key."
  value       = aws_secretsmanager_secret.key["gateway_session_key"].arn
}

output "keycloak_admin_secret_arn" {
  description = "Secret with Keycloak's admin credentials, JSON {username, password}."
  value       = aws_secretsmanager_secret.keycloak_admin.arn
}

output "keycloak_admin_secret_name" {
  description = "Name of the Keycloak admin secret (the keycloak_admin_secret_id output)."
  value       = aws_secretsmanager_secret.keycloak_admin.name
}

output "origin_verify_secret" {
  description = "The X-Origin-Verify header value (stable: read back from the stored secret version)."
  value       = aws_secretsmanager_secret_version.password["origin_verify"].secret_string
  sensitive   = true
}

output "keycloak_db_secret_arn" {
  description = "Secret with the password of Keycloak's own database user (plain string)."
  value       = aws_secretsmanager_secret.password["keycloak_db"].arn
}
