variable "name_prefix" {
  description = "Name of the web ACL and prefix of its metrics (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,100}$", var.name_prefix))
    error_message = "name_prefix must be 1-100 characters of letters, digits, '_' and '-'."
  }
}

variable "scope" {
  description = "CLOUDFRONT (the provider must be us-east-1) or REGIONAL (attached to the ALB)."
  type        = string
  validation {
    condition     = contains(["CLOUDFRONT", "REGIONAL"], var.scope)
    error_message = "scope must be CLOUDFRONT or REGIONAL."
  }
}

variable "alb_arn" {
  description = "ALB to associate with (REGIONAL scope only)."
  type        = string
  default     = ""
}

variable "rate_limit" {
  description = "Requests per client IP in 5 minutes across all paths before it is blocked."
  type        = number
  default     = 3000
  validation {
    condition     = var.rate_limit >= 100 && var.rate_limit <= 2000000000
    error_message = "rate_limit must be at least 100 (the WAF minimum is 10; below 100 agents would be blocked constantly)."
  }
}

variable "login_rate_limit" {
  description = "Requests per client IP in 5 minutes to login, callback and token paths."
  type        = number
  default     = 100
  validation {
    condition     = var.login_rate_limit >= 10 && var.login_rate_limit <= 10000
    error_message = "login_rate_limit must be between 10 and 10000."
  }
}

variable "admin_host" {
  description = "Keycloak's public host name; its /admin paths are limited to admin_cidr_blocks. Empty = no such rule."
  type        = string
  default     = ""
}

variable "admin_cidr_blocks" {
  description = "Addresses allowed to reach Keycloak's /admin (include the NAT addresses: mcpgw-setup uses the admin API)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.admin_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "admin_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "login_rate_exempt_cidr_blocks" {
  description = "Addresses the sign-in rate limit does not count: the platform's own NAT addresses, from which the auth-server reaches Keycloak's token endpoint for every user."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.login_rate_exempt_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "login_rate_exempt_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "enable_bot_control" {
  description = "Add AWS Bot Control (extra cost; HTTP-library and non-browser signals only count, since agents are bots)."
  type        = bool
  default     = false
}

variable "log_destination_arn" {
  description = "Where WAF logs go: an S3 bucket, CloudWatch log group or Firehose whose name starts with aws-waf-logs-."
  type        = string
  validation {
    condition     = can(regex("aws-waf-logs-", var.log_destination_arn))
    error_message = "log_destination_arn must name a destination whose name starts with aws-waf-logs- (a WAF requirement)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
