output "cluster_id" {
  description = "Cluster identifier."
  value       = aws_docdb_cluster.this.cluster_identifier
}

output "endpoint" {
  description = "Cluster (writer) endpoint as host:port."
  value       = "${aws_docdb_cluster.this.endpoint}:${aws_docdb_cluster.this.port}"
}

output "master_secret_arn" {
  description = "Secret with the master credentials, JSON {username, password}."
  value       = aws_secretsmanager_secret.master.arn
}

output "master_secret_name" {
  description = "Name of the master secret."
  value       = aws_secretsmanager_secret.master.name
}

output "registry_url_secret_arn" {
  description = "Secret with the registry's full connection URL."
  value       = aws_secretsmanager_secret.registry_url.arn
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_security_group.this.id
}
