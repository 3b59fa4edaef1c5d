output "regional_certificate_arn" {
  description = "Validated certificate in the platform's region (for the ALB)."
  value       = aws_acm_certificate_validation.regional.certificate_arn
}

output "cloudfront_certificate_arn" {
  description = "Validated certificate in us-east-1 (for CloudFront); empty without it."
  value       = var.cloudfront_certificate ? aws_acm_certificate_validation.cloudfront[0].certificate_arn : ""
}
