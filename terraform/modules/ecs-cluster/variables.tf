variable "name_prefix" {
  description = "Name of the cluster (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the private DNS namespace."
  type        = string
  validation {
    condition     = can(regex("^vpc-", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "namespace" {
  description = "Private DNS namespace for service discovery (services are <service>.<namespace>)."
  type        = string
  default     = "mcpgw.internal"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.namespace))
    error_message = "namespace must be a DNS name with at least two labels, e.g. mcpgw.internal."
  }
}

variable "container_insights" {
  description = "Container Insights level: enhanced, enabled or disabled."
  type        = string
  default     = "enhanced"
  validation {
    condition     = contains(["enhanced", "enabled", "disabled"], var.container_insights)
    error_message = "container_insights must be one of enhanced, enabled, disabled."
  }
}

variable "kms_key_arn" {
  description = "KMS key for ECS Exec session encryption."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:...)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
