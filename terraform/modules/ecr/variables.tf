variable "name_prefix" {
  description = "Repository namespace: repositories are <name_prefix>/<image>."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "repositories" {
  description = "Images that get a repository."
  type        = list(string)
  default     = ["registry", "auth-server", "gateway", "setup", "keycloak"]
  validation {
    condition     = length(var.repositories) > 0 && alltrue([for r in var.repositories : can(regex("^[a-z0-9][a-z0-9._-]*$", r))])
    error_message = "repositories must be a non-empty list of lower-case image names (a-z 0-9 . _ -)."
  }
}

variable "keep_tagged_images" {
  description = "Tagged images kept per repository; older ones expire."
  type        = number
  default     = 30
  validation {
    condition     = var.keep_tagged_images >= 5
    error_message = "keep_tagged_images must be at least 5, so a rollback target is always there."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:...)."
  }
}

variable "force_delete" {
  description = "Let terraform destroy delete repositories that still hold images (only for throw-away environments)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
