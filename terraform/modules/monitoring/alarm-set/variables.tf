variable "alarms" {
  description = "The alarms to create, keyed <key> or <key>/<service> (local.alarms of the parent: name, key, summary, queries, context, threshold, def)."
  type        = any
}

variable "topic_arn" {
  description = "SNS topic the alarms notify (ALARM and OK); in the same region as the alarms. Unused when alarms is empty."
  type        = string
}

variable "runbook_base_url" {
  description = "Runbook URL; each description ends with <runbook_base_url>#<key>."
  type        = string
}

variable "log_namespace" {
  description = "CloudWatch namespace of the parent's log metric filters (queries with namespace \"LOG\")."
  type        = string
}

variable "tags" {
  description = "Tags added to every alarm."
  type        = map(string)
  default     = {}
}
