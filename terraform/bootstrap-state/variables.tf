variable "aws_region" {
  description = "Region of the state bucket and lock table (usually the platform's region)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  description = "Prefix of the bucket, table and key alias names."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lower-case letters, digits or '-', starting with a letter (it is part of an S3 bucket name)."
  }
}

variable "noncurrent_version_days" {
  description = "Days old state versions are kept (to roll back a bad apply)."
  type        = number
  default     = 90
  validation {
    condition     = var.noncurrent_version_days >= 30
    error_message = "noncurrent_version_days must be at least 30."
  }
}
