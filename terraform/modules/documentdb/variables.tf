variable "name_prefix" {
  description = "Prefix of every resource name (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "secret_prefix" {
  description = "Prefix of the secret names (<prefix>/platform/documentdb-master, …)."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_+=.@-]{0,62}$", var.secret_prefix))
    error_message = "secret_prefix must be 1-63 characters from A-Z a-z 0-9 _+=.@- (no '/')."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
  validation {
    condition     = can(regex("^vpc-", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets in at least two zones."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids must list at least two private subnets."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 27017, by a name used in the rule description."
  type        = map(string)
}

variable "engine_version" {
  description = "DocumentDB engine version (5.0.0: the parameter group family is docdb5.0)."
  type        = string
  default     = "5.0.0"
  validation {
    condition     = can(regex("^5\\.0\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be a DocumentDB 5.0.x version (the parameter group family is docdb5.0)."
  }
}

variable "master_username" {
  description = "Master user name."
  type        = string
  default     = "mcpgw_admin"
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_]{0,62}$", var.master_username)) && !contains(["admin", "root", "serviceadmin"], lower(var.master_username))
    error_message = "master_username must start with a letter, hold only letters, digits and '_', and not be a reserved name (admin, root, serviceadmin)."
  }
}

variable "instance_class" {
  description = "Instance class of each DocumentDB instance."
  type        = string
  default     = "db.t4g.medium"
  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must look like db.<family>.<size>, e.g. db.t4g.medium or db.r6g.large."
  }
}

variable "instance_count" {
  description = "Instances in the cluster (2 or more gives a replica to fail over to)."
  type        = number
  default     = 2
  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 16
    error_message = "instance_count must be between 1 and 16."
  }
}

variable "backup_retention_days" {
  description = "Days automated backups are kept."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster (turn off only to destroy a throw-away environment)."
  type        = bool
  default     = true
}

variable "ca_file_path" {
  description = "Path of the RDS CA bundle (global-bundle.pem) inside the registry image, for tlsCAFile."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
  validation {
    condition     = startswith(var.ca_file_path, "/")
    error_message = "ca_file_path must be an absolute path inside the container image."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 = at once, throw-away environments only)."
  type        = number
  default     = 30
  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "kms_key_arn" {
  description = "KMS key for storage and the secrets."
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
