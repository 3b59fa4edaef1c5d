variable "name_prefix" {
  description = "Prefix of every resource name (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
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
    error_message = "subnet_ids must list at least two private subnets (Aurora needs two zones)."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 5432, by a name used in the rule description."
  type        = map(string)
}

variable "engine_version" {
  description = "Aurora PostgreSQL version (16.x)."
  type        = string
  default     = "16.6"
  validation {
    condition     = can(regex("^16\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be an Aurora PostgreSQL 16.x version (the parameter group family is aurora-postgresql16)."
  }
}

variable "database_name" {
  description = "Database created with the cluster (the auth-server's); Keycloak's `keycloak` database is created by the db-init container of its task."
  type        = string
  default     = "mcpgw_auth"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must be a PostgreSQL identifier: lower-case letters, digits and '_', not starting with a digit."
  }
}

variable "master_username" {
  description = "Master user name (the password is managed by RDS in Secrets Manager)."
  type        = string
  default     = "mcpgw_admin"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.master_username)) && !contains(["admin", "postgres", "rdsadmin"], var.master_username)
    error_message = "master_username must be 1-16 lower-case letters, digits or '_', start with a letter, and not be a reserved name (admin, postgres, rdsadmin)."
  }
}

variable "min_acu" {
  description = "Serverless v2 minimum capacity (ACU)."
  type        = number
  default     = 0.5
  validation {
    condition     = var.min_acu >= 0 && var.min_acu <= 128
    error_message = "min_acu must be between 0 and 128."
  }
}

variable "max_acu" {
  description = "Serverless v2 maximum capacity (ACU)."
  type        = number
  default     = 4
  validation {
    condition     = var.max_acu >= 1 && var.max_acu <= 256
    error_message = "max_acu must be between 1 and 256."
  }
}

variable "instance_count" {
  description = "Cluster instances (2 or more gives a reader to fail over to)."
  type        = number
  default     = 2
  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 15
    error_message = "instance_count must be between 1 and 15."
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

variable "enhanced_monitoring_role_arn" {
  description = "IAM role for RDS enhanced monitoring (empty = off)."
  type        = string
  default     = ""
  validation {
    condition     = var.enhanced_monitoring_role_arn == "" || can(regex("^arn:aws[a-z-]*:iam::", var.enhanced_monitoring_role_arn))
    error_message = "enhanced_monitoring_role_arn must be empty or an IAM role ARN."
  }
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights and the master secret."
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
