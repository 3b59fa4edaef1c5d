output "alarms" {
  description = "The alarms, by the keys of var.alarms (name, ARN, threshold, description, queries)."
  value       = aws_cloudwatch_metric_alarm.this
}
