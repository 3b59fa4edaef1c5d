variable "name_prefix" {
  description = "Prefix of every resource name (e.g. mcpgw-prod); the ALB is <name_prefix>-alb."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-26 characters of lower-case letters, digits and '-' (ALB names are at most 32 characters)."
  }
}

variable "vpc_id" {
  description = "VPC of the load balancer."
  type        = string
  validation {
    condition     = can(regex("^vpc-", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "vpc_cidr" {
  description = "IPv4 block of the VPC (the ALB's egress to the tasks)."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "public_subnet_ids" {
  description = "Public subnets in at least two zones."
  type        = list(string)
  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids must list at least two subnets (an ALB needs two zones)."
  }
}

variable "https" {
  description = "Serve HTTPS on 443 with certificate_arn and redirect port 80; false = plain HTTP on 80 (CloudFront default domain mode only)."
  type        = bool
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener (required when https)."
  type        = string
  default     = ""
  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener. The default offers TLS 1.3 and, for CloudFront's origin connections, TLS 1.2 with forward-secret AEAD ciphers only."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
  validation {
    condition     = startswith(var.ssl_policy, "ELBSecurityPolicy-TLS13-")
    error_message = "ssl_policy must be one of the TLS 1.3 policies (ELBSecurityPolicy-TLS13-...)."
  }
}

variable "cloudfront_origin" {
  description = "The ALB sits behind CloudFront: accept only CloudFront's prefix list and the secret origin header, route on X-Mcpgw-Service."
  type        = bool
}

variable "origin_verify_secret" {
  description = "Value of the X-Origin-Verify header CloudFront adds (required when cloudfront_origin)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "ingress_cidr_blocks" {
  description = "Who may connect when not behind CloudFront (e.g. office and VPN ranges)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  validation {
    condition     = length(var.ingress_cidr_blocks) > 0 && alltrue([for c in var.ingress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "ingress_cidr_blocks must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "nat_cidr_blocks" {
  description = "The platform's NAT addresses (/32), always allowed in (the services call their own public URLs)."
  type        = list(string)
  default     = []
}

variable "admin_cidr_blocks" {
  description = "Who may open Keycloak's /admin (direct mode); empty = nobody through the ALB."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.admin_cidr_blocks) <= 8 && alltrue([for c in var.admin_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "admin_cidr_blocks must be at most 8 IPv4 CIDR blocks (rule priorities 1-8 are reserved for them)."
  }
}

variable "services" {
  description = "Per service: its target group and the host names it answers to (direct mode)."
  type = map(object({
    target_group_arn = string
    hostnames        = list(string)
  }))
}

variable "access_logs_bucket" {
  description = "S3 bucket for access logs (prefix alb/)."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer."
  type        = bool
  default     = true
}

variable "idle_timeout_seconds" {
  description = "Seconds a connection may stay idle (long enough for quiet MCP streams)."
  type        = number
  default     = 900
  validation {
    condition     = var.idle_timeout_seconds >= 60 && var.idle_timeout_seconds <= 4000
    error_message = "idle_timeout_seconds must be between 60 and 4000."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "security_group_rule_quota" {
  description = "Inbound rules per security group allowed in this account (the VPC quota; 60 by default)."
  type        = number
  default     = 60
}
