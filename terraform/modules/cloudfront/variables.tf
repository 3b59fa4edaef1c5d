variable "name_prefix" {
  description = "Prefix used in the distributions' comments (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = length(var.name_prefix) > 0
    error_message = "name_prefix must not be empty."
  }
}

variable "services" {
  description = "One distribution per service; alias is its custom host name (\"\" = the default *.cloudfront.net name)."
  type = map(object({
    alias = string
  }))
  validation {
    condition     = length(var.services) > 0
    error_message = "services must name at least one service."
  }
}

variable "origin_domain_name" {
  description = "DNS name of the ALB."
  type        = string
}

variable "origin_verify_secret" {
  description = "Secret value of the X-Origin-Verify header the ALB requires."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.origin_verify_secret) >= 32
    error_message = "origin_verify_secret must be at least 32 characters."
  }
}

variable "certificate_arn" {
  description = "ACM certificate in us-east-1 covering every alias; empty = default CloudFront domain (origin over HTTP)."
  type        = string
  default     = ""
  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.certificate_arn))
    error_message = "certificate_arn must be empty or an ACM certificate ARN in us-east-1 (CloudFront uses only that region)."
  }
}

variable "web_acl_arn" {
  description = "WAFv2 web ACL (CLOUDFRONT scope) to attach; empty = none."
  type        = string
  default     = ""
  validation {
    condition     = var.web_acl_arn == "" || can(regex("^arn:aws[a-z-]*:wafv2:us-east-1:[0-9]{12}:global/webacl/", var.web_acl_arn))
    error_message = "web_acl_arn must be empty or the ARN of a CLOUDFRONT-scope web ACL (arn:aws:wafv2:us-east-1:<account>:global/webacl/...)."
  }
}

variable "origin_read_timeout_seconds" {
  description = "Seconds CloudFront waits for the next bytes from the ALB; MCP streams must send a keep-alive more often (above 60 needs a quota increase)."
  type        = number
  default     = 60
  validation {
    condition     = var.origin_read_timeout_seconds >= 4 && var.origin_read_timeout_seconds <= 180
    error_message = "origin_read_timeout_seconds must be between 4 and 180."
  }
}

variable "origin_keepalive_timeout_seconds" {
  description = "Seconds CloudFront keeps an idle origin connection open for reuse."
  type        = number
  default     = 60
  validation {
    condition     = var.origin_keepalive_timeout_seconds >= 1 && var.origin_keepalive_timeout_seconds <= 180
    error_message = "origin_keepalive_timeout_seconds must be between 1 and 180."
  }
}

variable "price_class" {
  description = "CloudFront price class (which edge locations serve)."
  type        = string
  default     = "PriceClass_100"
  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "geo_allow_countries" {
  description = "ISO country codes allowed to connect; empty = no geo restriction."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.geo_allow_countries : can(regex("^[A-Z]{2}$", c))])
    error_message = "geo_allow_countries must be upper-case two-letter ISO 3166 country codes."
  }
}

variable "logs_bucket_domain_name" {
  description = "Regional domain name of the access-log bucket."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
