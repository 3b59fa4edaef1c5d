output "bucket_id" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.id
}

output "bucket_arn" {
  description = "ARN of the access-log bucket."
  value       = aws_s3_bucket.logs.arn
}

output "bucket_domain_name" {
  description = "Regional domain name of the bucket (CloudFront logging_config.bucket)."
  value       = aws_s3_bucket.logs.bucket_regional_domain_name
}
