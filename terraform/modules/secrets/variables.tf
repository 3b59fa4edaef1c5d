variable "name_prefix" {
  description = "Prefix of resource names (e.g. mcpgw-prod); the KMS alias is alias/<name_prefix>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "secret_prefix" {
  description = "Prefix of every secret name (the setup binary's secret_prefix); secrets are <prefix>/platform/…, <prefix>/keycloak/…, <prefix>/registry/…."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_+=.@-]{0,62}$", var.secret_prefix))
    error_message = "secret_prefix must be 1-63 characters from A-Z a-z 0-9 _+=.@- (no '/': it is one path segment)."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once: only for throw-away environments)."
  type        = number
  default     = 30
  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or between 7 and 30 (the Secrets Manager limits)."
  }
}

variable "kms_deletion_window_days" {
  description = "Days a KMS key scheduled for deletion can still be cancelled."
  type        = number
  default     = 30
  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
