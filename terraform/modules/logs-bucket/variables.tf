variable "name_prefix" {
  description = "Prefix of every resource name (e.g. mcpgw-prod); part of the bucket name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter (it is part of an S3 bucket name)."
  }
}

variable "retention_days" {
  description = "Days access logs are kept before they expire."
  type        = number
  default     = 365
  validation {
    condition     = var.retention_days >= 31 && var.retention_days <= 3650
    error_message = "retention_days must be between 31 and 3650 (S3 needs objects 30 days in STANDARD before the IA transition)."
  }
}

variable "transition_to_ia_days" {
  description = "Days after which logs move to STANDARD_IA (at least 30, below retention_days)."
  type        = number
  default     = 30
  validation {
    condition     = var.transition_to_ia_days >= 30
    error_message = "transition_to_ia_days must be at least 30 (an S3 rule for STANDARD_IA)."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a bucket that still holds logs (only for throw-away environments)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
