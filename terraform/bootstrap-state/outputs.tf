output "bucket" {
  description = "State bucket."
  value       = aws_s3_bucket.state.id
}

output "dynamodb_table" {
  description = "Lock table."
  value       = aws_dynamodb_table.lock.name
}

output "kms_key_arn" {
  description = "Key that encrypts the state and the locks."
  value       = aws_kms_key.state.arn
}

output "backend_config" {
  description = "The backend block for an environment's backend.tf (replace ENVIRONMENT)."
  value       = <<-EOT
    terraform {
      backend "s3" {
        bucket         = "${aws_s3_bucket.state.id}"
        key            = "ENVIRONMENT/terraform.tfstate"
        region         = "${var.aws_region}"
        encrypt        = true
        kms_key_id     = "${aws_kms_key.state.arn}"
        dynamodb_table = "${aws_dynamodb_table.lock.name}"
      }
    }
  EOT
}
