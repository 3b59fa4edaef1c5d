output "cluster_id" {
  description = "Cluster identifier."
  value       = aws_rds_cluster.this.cluster_identifier
}

output "endpoint" {
  description = "Writer endpoint as host:port."
  value       = "${aws_rds_cluster.this.endpoint}:${aws_rds_cluster.this.port}"
}

output "host" {
  description = "Writer endpoint host name."
  value       = aws_rds_cluster.this.endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_rds_cluster.this.port
}

output "master_username" {
  description = "Master user name."
  value       = aws_rds_cluster.this.master_username
}

output "master_secret_arn" {
  description = "ARN of the RDS-managed master secret, JSON {username, password}."
  value       = aws_rds_cluster.this.master_user_secret[0].secret_arn
}

output "database_name" {
  description = "Database created with the cluster."
  value       = aws_rds_cluster.this.database_name
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_security_group.this.id
}
