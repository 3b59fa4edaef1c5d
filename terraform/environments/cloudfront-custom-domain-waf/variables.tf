variable "aws_region" {
  description = "Region of the platform."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "environment" {
  description = "dev, staging or prod (mcpgw-setup creates dev users only in dev; staging behaves as prod)."
  type        = string
  default     = "prod"
  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "secret_prefix" {
  description = "Prefix of the platform's Secrets Manager names."
  type        = string
  default     = "mcpgw"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_+=.@-]{0,62}$", var.secret_prefix))
    error_message = "secret_prefix must be 1-63 characters from A-Z a-z 0-9 _+=.@- (no '/')."
  }
}

variable "image_tags" {
  description = "Immutable tag (or sha256:digest) per image: registry, auth-server, gateway, setup, keycloak, db-init."
  type        = map(string)
  validation {
    condition     = toset(keys(var.image_tags)) == toset(["registry", "auth-server", "gateway", "setup", "keycloak", "db-init"])
    error_message = "image_tags must give exactly registry, auth-server, gateway, setup, keycloak and db-init."
  }
}

variable "keycloak_admin_cidr_blocks" {
  description = "Who may open Keycloak's admin console besides the platform's NAT addresses."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.keycloak_admin_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "keycloak_admin_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "alarm_email" {
  description = "E-mail subscribed to the alarms (\"\" = none)."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or one e-mail address."
  }
}

variable "runbook_base_url" {
  description = "URL of docs/runbook.md as operators open it (alarm descriptions link to it)."
  type        = string
  validation {
    condition     = can(regex("^https?://[^\\s#]+$", var.runbook_base_url))
    error_message = "runbook_base_url must be an http(s) URL without a #fragment."
  }
}

variable "deletion_protection" {
  description = "Protect the ALB and the databases from deletion."
  type        = bool
  default     = true
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, less available)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on every resource (cost allocation, owner)."
  type        = map(string)
  default     = {}
}

variable "domain_name" {
  description = "Base domain of the public host names (registry.<domain>, auth.<domain>, mcp.<domain>, kc.<domain>)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lower-case DNS name such as example.com."
  }
}

variable "route53_zone_id" {
  description = "Public Route 53 hosted zone of domain_name."
  type        = string
  validation {
    condition     = can(regex("^Z[A-Z0-9]{5,31}$", var.route53_zone_id))
    error_message = "route53_zone_id must be a Route 53 hosted zone id (Z followed by letters and digits)."
  }
}

variable "certificates_only" {
  description = "First stage of a first deployment: create and validate the ACM certificates only, then apply again with false."
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


variable "throwaway" {
  description = "A disposable environment: secrets are deleted without a recovery window and buckets and repositories with their contents on destroy. Never in production."
  type        = bool
  default     = false
}
