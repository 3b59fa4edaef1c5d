variable "zone_id" {
  description = "Route 53 hosted zone that holds the host names (public zone of the base domain)."
  type        = string
  validation {
    condition     = can(regex("^Z[A-Z0-9]{5,31}$", var.zone_id))
    error_message = "zone_id must be a Route 53 hosted zone id (Z followed by letters and digits)."
  }
}

variable "hostnames" {
  description = "Fully qualified host name per service, e.g. { registry = \"registry.example.com\" }."
  type        = map(string)
  validation {
    condition     = length(var.hostnames) > 0 && alltrue([for h in values(var.hostnames) : can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", h))])
    error_message = "hostnames must map services to lower-case fully qualified DNS names (e.g. registry.example.com)."
  }
}

variable "cloudfront_certificate" {
  description = "Also issue the certificate in us-east-1 for CloudFront."
  type        = bool
  default     = false
}

variable "create_records" {
  description = "Create the A/AAAA alias records (false during the certificate-only first stage)."
  type        = bool
  default     = true
}

variable "alias_targets" {
  description = "Alias target per service (same keys as hostnames): the CloudFront distribution or the ALB."
  type = map(object({
    dns_name = string
    zone_id  = string
  }))
  default = {}
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
