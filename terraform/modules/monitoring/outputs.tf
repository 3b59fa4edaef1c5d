output "sns_topic_arn" {
  description = "ARN of the alarm topic: subscribe pagers and chat integrations here."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch operations dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_names" {
  description = "Names of every alarm this module created, sorted."
  value       = sort([for a in merge(module.regional_alarms.alarms, module.edge_alarms.alarms) : a.alarm_name])
}

output "log_metric_namespace" {
  description = "CloudWatch namespace of the metrics made from the services' logs (for extra alarms or widgets)."
  value       = local.log_namespace
}
