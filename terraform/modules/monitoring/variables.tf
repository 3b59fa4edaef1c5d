variable "name_prefix" {
  description = "Prefix of every name this module creates (alarms, SNS topic, dashboard, log metric namespace), e.g. \"mcpgw-prod\"."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-40 characters of lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "alb_arn_suffix" {
  description = "The ALB's ARN suffix (aws_lb.arn_suffix, \"app/<name>/<id>\"): the LoadBalancer dimension of AWS/ApplicationELB metrics."
  type        = string

  validation {
    condition     = can(regex("^app/[A-Za-z0-9-]+/[0-9a-f]+$", var.alb_arn_suffix))
    error_message = "alb_arn_suffix must look like \"app/<name>/<hex id>\" (the arn_suffix attribute of aws_lb), not a full ARN or a DNS name."
  }
}

variable "target_group_arn_suffixes" {
  description = "Target group ARN suffixes (aws_lb_target_group.arn_suffix, \"targetgroup/<name>/<id>\") by service: any of registry, auth-server, gateway, keycloak."
  type        = map(string)

  validation {
    condition     = length(var.target_group_arn_suffixes) > 0 && alltrue([for k in keys(var.target_group_arn_suffixes) : contains(["registry", "auth-server", "gateway", "keycloak"], k)])
    error_message = "target_group_arn_suffixes must not be empty and its keys must be services among registry, auth-server, gateway, keycloak."
  }
  validation {
    condition     = alltrue([for v in values(var.target_group_arn_suffixes) : can(regex("^targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$", v))])
    error_message = "Each value of target_group_arn_suffixes must look like \"targetgroup/<name>/<hex id>\" (the arn_suffix attribute of aws_lb_target_group)."
  }
}

variable "ecs_cluster_name" {
  description = "Name of the ECS cluster running the services (ClusterName dimension)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.ecs_cluster_name))
    error_message = "ecs_cluster_name must be 1-255 letters, digits, hyphens or underscores (a cluster name, not an ARN)."
  }
}

variable "ecs_service_names" {
  description = "ECS service names by service: any of registry, auth-server, gateway, keycloak (ServiceName dimension)."
  type        = map(string)

  validation {
    condition     = length(var.ecs_service_names) > 0 && alltrue([for k in keys(var.ecs_service_names) : contains(["registry", "auth-server", "gateway", "keycloak"], k)])
    error_message = "ecs_service_names must not be empty and its keys must be services among registry, auth-server, gateway, keycloak."
  }
  validation {
    condition     = alltrue([for v in values(var.ecs_service_names) : can(regex("^[A-Za-z0-9_-]{1,255}$", v))])
    error_message = "Each value of ecs_service_names must be an ECS service name (letters, digits, hyphens, underscores), not an ARN."
  }
}

variable "aurora_cluster_id" {
  description = "Identifier of the Aurora PostgreSQL cluster (auth-server and Keycloak): DBClusterIdentifier dimension of AWS/RDS."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,62}$", var.aurora_cluster_id))
    error_message = "aurora_cluster_id must be a DB cluster identifier: a letter, then up to 62 letters, digits or hyphens."
  }
}

variable "documentdb_cluster_id" {
  description = "Identifier of the DocumentDB cluster (registry): DBClusterIdentifier dimension of AWS/DocDB."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,62}$", var.documentdb_cluster_id))
    error_message = "documentdb_cluster_id must be a DocumentDB cluster identifier: a letter, then up to 62 letters, digits or hyphens."
  }
}

variable "waf_web_acl_name" {
  description = "Name of the WAF web ACL (WebACL dimension of AWS/WAFV2); \"\" when there is no WAF, and then no WAF alarm or widget is created."
  type        = string

  validation {
    condition     = var.waf_web_acl_name == "" || can(regex("^[A-Za-z0-9_-]{1,128}$", var.waf_web_acl_name))
    error_message = "waf_web_acl_name must be \"\" (no WAF) or a web ACL name of 1-128 letters, digits, hyphens or underscores."
  }
}

variable "waf_region" {
  description = "Region dimension of the web ACL's AWS/WAFV2 metrics (the region the ACL's metrics are published in). CloudWatch alarms only see metrics of their own region, so it must be this module's provider region for the WAF alarm to work (a warning says so otherwise). Ignored when waf_web_acl_name is \"\"."
  type        = string

  validation {
    condition     = var.waf_region == "" || can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.waf_region))
    error_message = "waf_region must be an AWS region name such as \"eu-west-1\" (or \"\" when there is no WAF)."
  }
}

variable "cloudfront_distribution_ids" {
  description = "CloudFront distribution id by service; {} without CloudFront. Their alarms are created in us-east-1 (the aws.us_east_1 provider), where CloudFront publishes its metrics."
  type        = map(string)
  default     = {}
}

variable "log_group_names" {
  description = "CloudWatch log group of each service's JSON logs (stdout through the awslogs driver), by service. Must hold registry, auth-server and gateway; keycloak is optional (adds its LOGIN_ERROR events to the auth denial alarm)."
  type        = map(string)

  validation {
    condition     = alltrue([for k in ["registry", "auth-server", "gateway"] : contains(keys(var.log_group_names), k)])
    error_message = "log_group_names must name the log groups of registry, auth-server and gateway (keycloak is optional)."
  }
  validation {
    condition     = alltrue([for k in keys(var.log_group_names) : contains(["registry", "auth-server", "gateway", "keycloak"], k)])
    error_message = "log_group_names keys must be services among registry, auth-server, gateway, keycloak."
  }
  validation {
    condition     = alltrue([for v in values(var.log_group_names) : can(regex("^[.\\-_/#A-Za-z0-9]{1,512}$", v))])
    error_message = "Each log group name must be 1-512 characters of letters, digits and . - _ / # (a log group name, not an ARN)."
  }
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic; \"\" = no subscription (subscribe a pager or chat integration to the sns_topic_arn output instead)."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be \"\" or one e-mail address (name@domain)."
  }
}

variable "runbook_base_url" {
  description = "URL of docs/runbook.md as operators open it (e.g. https://github.com/<org>/<repo>/blob/main/docs/runbook.md); every alarm description ends with <this>#<alarm key>."
  type        = string

  validation {
    condition     = can(regex("^https?://[^\\s#]+$", var.runbook_base_url))
    error_message = "runbook_base_url must be an http(s) URL without spaces and without a #fragment (the module appends #<alarm key>)."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key (or alias ARN) that encrypts the SNS topic. Its key policy must let cloudwatch.amazonaws.com use kms:GenerateDataKey* and kms:Decrypt, or alarms cannot publish."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key or alias ARN (arn:aws:kms:<region>:<account>:key/<id> or :alias/<name>)."
  }
}

variable "threshold_overrides" {
  description = "Optional thresholds by alarm key (the keys of local.alarm_definitions, e.g. {\"aurora-connections\" = 400}); each replaces the default for every instance of that alarm."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.threshold_overrides) : v >= 0])
    error_message = "threshold_overrides values must be zero or positive."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource of this module."
  type        = map(string)
  default     = {}
}
