output "domain_names" {
  description = "Default *.cloudfront.net domain per service."
  value       = { for k, d in aws_cloudfront_distribution.this : k => d.domain_name }
}

output "hosted_zone_id" {
  description = "Route 53 zone id of CloudFront (the same for every distribution)."
  value       = values(aws_cloudfront_distribution.this)[0].hosted_zone_id
}

output "distribution_ids" {
  description = "Distribution id per service."
  value       = { for k, d in aws_cloudfront_distribution.this : k => d.id }
}
