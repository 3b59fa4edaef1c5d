# --- identity of the deployment ------------------------------------------------------------

variable "project" {
  description = "Short project name, the first part of every resource name."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.project))
    error_message = "project must be 2-12 lower-case letters or digits, starting with a letter."
  }
}

variable "environment" {
  description = "dev, staging or prod (mcpgw-setup creates dev users only in dev; the registry routes only approved_prod servers in staging and prod, so staging rehearses prod)."
  type        = string
  default     = "prod"
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod (the values mcpgw-setup accepts; staging behaves as prod)."
  }
}

variable "secret_prefix" {
  description = "Prefix of every Secrets Manager name the platform and mcpgw-setup use."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_+=.@-]{0,62}$", var.secret_prefix))
    error_message = "secret_prefix must be 1-63 characters from A-Z a-z 0-9 _+=.@- (no '/')."
  }
}

variable "tags" {
  description = "Tags added to every resource (on top of Project and Environment)."
  type        = map(string)
  default     = {}
}

# --- edge mode ---------------------------------------------------------------------------------

variable "enable_cloudfront" {
  description = "Put CloudFront in front of the ALB (one distribution per service)."
  type        = bool
}

variable "domain_name" {
  description = "Base domain for the public host names (e.g. example.com); empty = CloudFront's default domains (needs enable_cloudfront)."
  type        = string
  default     = ""
  validation {
    condition     = var.domain_name == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be empty or a lower-case DNS name such as example.com."
  }
}

variable "route53_zone_id" {
  description = "Public Route 53 hosted zone of domain_name (required with a domain)."
  type        = string
  default     = ""
  validation {
    condition     = var.route53_zone_id == "" || can(regex("^Z[A-Z0-9]{5,31}$", var.route53_zone_id))
    error_message = "route53_zone_id must be empty or a Route 53 hosted zone id (Z…)."
  }
}

variable "host_labels" {
  description = "First label of each service's host name under domain_name."
  type        = map(string)
  default = {
    registry    = "registry"
    auth-server = "auth"
    gateway     = "mcp"
    keycloak    = "kc"
  }
  validation {
    condition     = toset(keys(var.host_labels)) == toset(["registry", "auth-server", "gateway", "keycloak"]) && alltrue([for v in values(var.host_labels) : can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", v))])
    error_message = "host_labels must give a DNS label (a-z 0-9 -) for each of registry, auth-server, gateway and keycloak."
  }
}

variable "certificates_only" {
  description = "Stage 1 of a first deployment with a domain: create and validate the ACM certificates only (see README.md)."
  type        = bool
  default     = false
}

variable "enable_waf" {
  description = "Attach a WAF web ACL: to CloudFront when enabled, otherwise to the ALB."
  type        = bool
  default     = true
}

variable "waf_rate_limit" {
  description = "Requests per client IP in 5 minutes before WAF blocks it."
  type        = number
  default     = 3000
  validation {
    condition     = var.waf_rate_limit >= 100
    error_message = "waf_rate_limit must be at least 100."
  }
}

variable "waf_login_rate_limit" {
  description = "Requests per client IP in 5 minutes to login and token paths before WAF blocks it."
  type        = number
  default     = 100
  validation {
    condition     = var.waf_login_rate_limit >= 10
    error_message = "waf_login_rate_limit must be at least 10."
  }
}

variable "waf_bot_control" {
  description = "Add AWS Bot Control to the web ACL (extra cost)."
  type        = bool
  default     = false
}

variable "geo_allow_countries" {
  description = "ISO country codes CloudFront serves; empty = everywhere."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.geo_allow_countries : can(regex("^[A-Z]{2}$", c))])
    error_message = "geo_allow_countries must be upper-case two-letter ISO 3166 codes."
  }
}

variable "ingress_cidr_blocks" {
  description = "Who may reach the ALB directly (without CloudFront), e.g. office and VPN ranges."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  validation {
    condition     = length(var.ingress_cidr_blocks) > 0 && alltrue([for c in var.ingress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "ingress_cidr_blocks must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "keycloak_admin_cidr_blocks" {
  description = "Who may open Keycloak's /admin besides the NAT addresses (mcpgw-setup); enforced by the ALB (direct) or the WAF (CloudFront)."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.keycloak_admin_cidr_blocks) <= 5 && alltrue([for c in var.keycloak_admin_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "keycloak_admin_cidr_blocks must be at most 5 IPv4 CIDR blocks (with up to 3 NAT addresses the ALB has 8 rule slots)."
  }
}

variable "cloudfront_origin_read_timeout_seconds" {
  description = "Seconds CloudFront waits for the next bytes of a response (MCP streams need keep-alives more often)."
  type        = number
  default     = 60
  validation {
    condition     = var.cloudfront_origin_read_timeout_seconds >= 4 && var.cloudfront_origin_read_timeout_seconds <= 180
    error_message = "cloudfront_origin_read_timeout_seconds must be between 4 and 180 (above 60 needs a CloudFront quota increase)."
  }
}

# --- network -----------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "IPv4 block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "az_count" {
  description = "Availability zones (2 or 3)."
  type        = number
  default     = 2
  validation {
    condition     = contains([2, 3], var.az_count)
    error_message = "az_count must be 2 or 3."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone (cheaper, less available)."
  type        = bool
  default     = false
}

# --- images and services ----------------------------------------------------------------------

variable "image_tags" {
  description = "Immutable tag (or sha256 digest) per image in ECR: registry, auth-server, gateway, setup, keycloak, db-init."
  type        = map(string)
  validation {
    condition     = toset(keys(var.image_tags)) == toset(["registry", "auth-server", "gateway", "setup", "keycloak", "db-init"])
    error_message = "image_tags must give exactly the images registry, auth-server, gateway, setup, keycloak and db-init."
  }
  validation {
    condition     = alltrue([for t in values(var.image_tags) : can(regex("^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[a-f0-9]{64})$", t)) && t != "latest"])
    error_message = "image_tags values must be immutable tags such as v1.0.3-build-20260524 (not latest) or sha256:<digest>."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture the images are built for: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "service_sizes" {
  description = "CPU units, memory (MiB) and task counts per service."
  type = map(object({
    cpu          = number
    memory       = number
    min_capacity = number
    max_capacity = number
  }))
  default = {
    registry    = { cpu = 512, memory = 1024, min_capacity = 2, max_capacity = 6 }
    auth-server = { cpu = 512, memory = 1024, min_capacity = 2, max_capacity = 4 }
    gateway     = { cpu = 1024, memory = 2048, min_capacity = 2, max_capacity = 10 }
    keycloak    = { cpu = 1024, memory = 2048, min_capacity = 2, max_capacity = 4 }
  }
  validation {
    condition     = toset(keys(var.service_sizes)) == toset(["registry", "auth-server", "gateway", "keycloak"]) && alltrue([for s in values(var.service_sizes) : s.min_capacity >= 1 && s.max_capacity >= s.min_capacity])
    error_message = "service_sizes must size registry, auth-server, gateway and keycloak, each with 1 <= min_capacity <= max_capacity."
  }
}

variable "catalog_namespace" {
  description = "Reverse-DNS namespace of server names in the registry's /v0.1 catalog (e.g. com.example)."
  type        = string
  default     = "local.mcpgw"
  validation {
    condition     = can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+$", var.catalog_namespace))
    error_message = "catalog_namespace must be reverse-DNS style, e.g. com.example."
  }
}

variable "keycloak_realm" {
  description = "The Keycloak realm mcpgw-setup creates (the OIDC issuer is <keycloak_url>/realms/<realm>)."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.keycloak_realm))
    error_message = "keycloak_realm must be letters, digits, '_' or '-'."
  }
}

variable "rds_ca_bundle_path" {
  description = "Path of the RDS CA bundle (global-bundle.pem) in the registry and setup images (TLS to DocumentDB)."
  type        = string
  default     = "/etc/ssl/certs/rds-global-bundle.pem"
  validation {
    condition     = startswith(var.rds_ca_bundle_path, "/")
    error_message = "rds_ca_bundle_path must be an absolute path."
  }
}

variable "enable_execute_command" {
  description = "Allow ECS Exec into the tasks (debugging; keep off in production)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days service logs are kept in CloudWatch Logs."
  type        = number
  default     = 90
  validation {
    condition     = contains([30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention of at least 30 days (30, 60, 90, 120, 150, 180, 365, …)."
  }
}

# --- databases ---------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Protect the ALB, Aurora and DocumentDB from deletion (turn off only to destroy a throw-away environment)."
  type        = bool
  default     = true
}

variable "aurora_min_acu" {
  description = "Aurora Serverless v2 minimum capacity."
  type        = number
  default     = 0.5
  validation {
    condition     = var.aurora_min_acu >= 0
    error_message = "aurora_min_acu must not be negative."
  }
}

variable "aurora_max_acu" {
  description = "Aurora Serverless v2 maximum capacity."
  type        = number
  default     = 4
  validation {
    condition     = var.aurora_max_acu >= 1
    error_message = "aurora_max_acu must be at least 1."
  }
}

variable "aurora_instance_count" {
  description = "Aurora instances (2 = writer and a failover reader)."
  type        = number
  default     = 2
  validation {
    condition     = var.aurora_instance_count >= 1
    error_message = "aurora_instance_count must be at least 1."
  }
}

variable "documentdb_instance_class" {
  description = "DocumentDB instance class."
  type        = string
  default     = "db.t4g.medium"
  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.documentdb_instance_class))
    error_message = "documentdb_instance_class must look like db.t4g.medium."
  }
}

variable "documentdb_instance_count" {
  description = "DocumentDB instances (2 = primary and a replica)."
  type        = number
  default     = 2
  validation {
    condition     = var.documentdb_instance_count >= 1
    error_message = "documentdb_instance_count must be at least 1."
  }
}

variable "backup_retention_days" {
  description = "Days Aurora and DocumentDB keep automated backups."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

# --- operations --------------------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail subscribed to the alarm topic (\"\" = none)."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or one e-mail address."
  }
}

variable "runbook_base_url" {
  description = "URL of docs/runbook.md as operators open it; alarm descriptions link to its sections."
  type        = string
  validation {
    condition     = can(regex("^https?://[^\\s#]+$", var.runbook_base_url))
    error_message = "runbook_base_url must be an http(s) URL without a #fragment."
  }
}

variable "throwaway" {
  description = "A disposable environment: secrets and buckets are deleted at once on destroy. Never in production."
  type        = bool
  default     = false
}
