# One CloudWatch alarm per entry of var.alarms, all built from metric queries (../alarms.tf
# describes an entry). ALARM and OK both notify the topic, so whoever was paged also learns of
# the recovery. A module of its own because the parent creates one set per region (CloudFront's
# metrics exist only in us-east-1) and a resource's provider cannot differ between instances.

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = var.alarms

  alarm_name          = each.value.name
  alarm_description   = "${replace(each.value.summary, "{threshold}", tostring(each.value.threshold))} Runbook: ${var.runbook_base_url}#${each.value.key}"
  comparison_operator = each.value.def.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.def.evaluation_periods
  datapoints_to_alarm = each.value.def.datapoints_to_alarm
  treat_missing_data  = each.value.def.treat_missing_data
  actions_enabled     = true
  alarm_actions       = [var.topic_arn]
  ok_actions          = [var.topic_arn]
  tags                = var.tags

  dynamic "metric_query" {
    for_each = each.value.queries
    content {
      id          = metric_query.value.id
      expression  = try(metric_query.value.expression, null)
      label       = try(metric_query.value.label, null)
      return_data = try(metric_query.value.return, false)

      dynamic "metric" {
        for_each = try(metric_query.value.metric, null) == null ? [] : [metric_query.value]
        content {
          metric_name = metric.value.metric
          namespace   = metric.value.namespace == "LOG" ? var.log_namespace : metric.value.namespace
          period      = each.value.def.period
          stat        = metric.value.stat
          dimensions  = { for dim, ctx in metric.value.dims : dim => each.value.context[ctx] }
        }
      }
    }
  }
}
