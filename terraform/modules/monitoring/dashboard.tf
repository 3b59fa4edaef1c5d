# The operations dashboard: alarm states first, then the ALB, each ECS service, the two
# databases, the WAF (when there is one) and the series made from the services' logs. Widgets
# have no x/y, so CloudWatch lays them out in this order, two per row.

locals {
  region = data.aws_region.current.name

  # One line per service for a per-target-group ALB metric.
  tg_series = {
    for metric_stat in [
      ["RequestCount", "Sum"],
      ["HTTPCode_Target_5XX_Count", "Sum"],
      ["HTTPCode_Target_4XX_Count", "Sum"],
      ["TargetResponseTime", "p95"],
      ["TargetResponseTime", "p99"],
      ["HealthyHostCount", "Minimum"],
      ["UnHealthyHostCount", "Maximum"],
      ] : "${metric_stat[0]}:${metric_stat[1]}" => [
      for svc, suffix in var.target_group_arn_suffixes :
      ["AWS/ApplicationELB", metric_stat[0], "LoadBalancer", var.alb_arn_suffix, "TargetGroup", suffix, { stat = metric_stat[1], label = svc }]
    ]
  }

  ecs_series = {
    for metric in ["CPUUtilization", "MemoryUtilization"] : metric => [
      for svc, name in var.ecs_service_names :
      ["AWS/ECS", metric, "ClusterName", var.ecs_cluster_name, "ServiceName", name, { stat = "Average", label = svc }]
    ]
  }

  tasks_series = flatten([
    for svc, name in var.ecs_service_names : [
      ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.ecs_cluster_name, "ServiceName", name, { stat = "Minimum", label = "${svc} running" }],
      ["ECS/ContainerInsights", "DesiredTaskCount", "ClusterName", var.ecs_cluster_name, "ServiceName", name, { stat = "Maximum", label = "${svc} desired" }],
    ]
  ])

  log_series = {
    for k in keys(local.log_metrics) : k => [local.log_namespace, k, { stat = k == "gateway-snapshot-age-seconds" ? "Maximum" : "Sum", label = k }]
  }

  graph = {
    for title, spec in {
      "ALB requests by service"                                                                            = { metrics = local.tg_series["RequestCount:Sum"] }
      "ALB 5xx (load balancer and per service)"                                                            = { metrics = concat([["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", var.alb_arn_suffix, { stat = "Sum", label = "ALB itself" }]], local.tg_series["HTTPCode_Target_5XX_Count:Sum"]) }
      "ALB 4xx by service (401s included)"                                                                 = { metrics = local.tg_series["HTTPCode_Target_4XX_Count:Sum"] }
      "Time to first byte p95 (s)"                                                                         = { metrics = local.tg_series["TargetResponseTime:p95"] }
      "Time to first byte p99 (s)"                                                                         = { metrics = local.tg_series["TargetResponseTime:p99"] }
      "Healthy targets (minimum)"                                                                          = { metrics = local.tg_series["HealthyHostCount:Minimum"] }
      "Unhealthy targets (maximum)"                                                                        = { metrics = local.tg_series["UnHealthyHostCount:Maximum"] }
      "ECS CPU % of reservation"                                                                           = { metrics = local.ecs_series["CPUUtilization"] }
      "ECS memory % of reservation"                                                                        = { metrics = local.ecs_series["MemoryUtilization"] }
      "ECS tasks running vs desired"                                                                       = { metrics = local.tasks_series }
      "Aurora PostgreSQL CPU % and connections"                                                            = { metrics = [["AWS/RDS", "CPUUtilization", "DBClusterIdentifier", var.aurora_cluster_id, { stat = "Maximum", label = "CPU %" }], ["AWS/RDS", "DatabaseConnections", "DBClusterIdentifier", var.aurora_cluster_id, { stat = "Maximum", label = "connections", yAxis = "right" }]] }
      "Aurora free local storage and deadlocks"                                                            = { metrics = [["AWS/RDS", "FreeLocalStorage", "DBClusterIdentifier", var.aurora_cluster_id, { stat = "Minimum", label = "free local storage (bytes)" }], ["AWS/RDS", "Deadlocks", "DBClusterIdentifier", var.aurora_cluster_id, { stat = "Maximum", label = "deadlocks/s", yAxis = "right" }]] }
      "DocumentDB CPU % and connections"                                                                   = { metrics = [["AWS/DocDB", "CPUUtilization", "DBClusterIdentifier", var.documentdb_cluster_id, { stat = "Maximum", label = "CPU %" }], ["AWS/DocDB", "DatabaseConnections", "DBClusterIdentifier", var.documentdb_cluster_id, { stat = "Maximum", label = "connections", yAxis = "right" }]] }
      "Gateway tool calls and upstream failures"                                                           = { metrics = [local.log_series["gateway-tool-calls"], local.log_series["gateway-upstream-errors"]] }
      "Refused credentials and denials"                                                                    = { metrics = [for k in ["gateway-unauthorized", "gateway-policy-denials", "auth-unauthorized", "auth-oidc-failures", "keycloak-login-errors"] : local.log_series[k] if contains(keys(local.log_series), k)] }
      "Gateway snapshot age while the registry is unreachable (s), unusable routes, dropped audit batches" = { metrics = [local.log_series["gateway-snapshot-age-seconds"], local.log_series["gateway-route-unusable"], local.log_series["gateway-audit-dropped"]] }
      "Store unavailable errors"                                                                           = { metrics = [local.log_series["registry-store-unavailable"], local.log_series["auth-store-unavailable"]] }
      } : title => {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title   = title
        region  = local.region
        view    = "timeSeries"
        stacked = false
        period  = 60
        metrics = spec.metrics
      }
    }
  }

  # Graph titles in display order (a map would sort them alphabetically).
  graph_order = [
    "ALB requests by service",
    "ALB 5xx (load balancer and per service)",
    "ALB 4xx by service (401s included)",
    "Time to first byte p95 (s)",
    "Time to first byte p99 (s)",
    "Healthy targets (minimum)",
    "Unhealthy targets (maximum)",
    "ECS CPU % of reservation",
    "ECS memory % of reservation",
    "ECS tasks running vs desired",
    "Aurora PostgreSQL CPU % and connections",
    "Aurora free local storage and deadlocks",
    "DocumentDB CPU % and connections",
    "Gateway tool calls and upstream failures",
    "Refused credentials and denials",
    "Gateway snapshot age while the registry is unreachable (s), unusable routes, dropped audit batches",
    "Store unavailable errors",
  ]

  waf_widgets = local.has_waf ? [{
    type   = "metric"
    width  = 12
    height = 6
    properties = {
      title   = "WAF allowed and blocked requests"
      region  = var.waf_region
      view    = "timeSeries"
      stacked = false
      period  = 60
      metrics = [
        ["AWS/WAFV2", "AllowedRequests", "WebACL", var.waf_web_acl_name, "Region", var.waf_region, "Rule", "ALL", { stat = "Sum", label = "allowed" }],
        ["AWS/WAFV2", "BlockedRequests", "WebACL", var.waf_web_acl_name, "Region", var.waf_region, "Rule", "ALL", { stat = "Sum", label = "blocked" }],
      ]
    }
  }] : []

  dashboard_widgets = concat(
    [{
      type   = "alarm"
      width  = 24
      height = 4
      properties = {
        title  = "Alarms (runbook: ${var.runbook_base_url})"
        alarms = sort([for a in module.regional_alarms.alarms : a.arn])
      }
    }],
    [for title in local.graph_order : local.graph[title]],
    local.waf_widgets,
  )
}

# The dashboard operators open first; its alarm widget links every alarm, whose description
# links its runbook entry.
resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name_prefix}-operations"
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
