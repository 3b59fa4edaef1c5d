# Alarms.
#
# local.alarm_definitions holds every alarm, keyed by its runbook anchor: the key is the
# `## <key>` entry in docs/runbook.md, the end of each alarm's description
# (<runbook_base_url>#<key>) and part of its name. scripts/check-runbook.sh fails when a key
# has no runbook entry or an entry has no key here, so add both together.
#
# Each definition:
#   per        "none" (one alarm), "target_group" (one per entry of
#              var.target_group_arn_suffixes), "ecs_service" (one per entry of
#              var.ecs_service_names) or "distribution" (one per entry of
#              var.cloudfront_distribution_ids); instances are named <prefix>-<key>-<service>.
#              CloudFront publishes its metrics in us-east-1 only and an alarm sees only its
#              own region's metrics, so "distribution" alarms are created in us-east-1 (the
#              aws.us_east_1 provider) and notify a topic there (sns.tf).
#   summary    the alarm description before the runbook link; {threshold} is replaced by
#              the instance's threshold.
#   queries    CloudWatch metric queries. A query with `metric` reads one metric; its `dims`
#              map a dimension name to a context value (lb, tg, cluster, service, aurora,
#              docdb, waf_acl, waf_region, waf_rule); namespace "LOG" is this module's
#              log metric namespace (logs.tf). A query with `expression` is metric math.
#              Exactly one query has return = true: the value compared with the threshold.
#   comparison, threshold (thresholds_by_instance per service), period (s),
#   evaluation_periods, datapoints_to_alarm, treat_missing_data (the comment says why).
#   enabled    optional; false leaves the alarm out (WAF without a web ACL).
#
# All alarms are created by the one resource below, through metric queries, whatever their
# shape (a single metric, a ratio, a difference).

locals {
  has_waf = var.waf_web_acl_name != ""

  alb5xx_min_requests = 50
  tool_calls_min      = 20

  # Alarms on a log metric filter: any matching line in 5 minutes (at or over the threshold)
  # fires; no line means nothing happened.
  log_line_alarm = {
    comparison          = "GreaterThanOrEqualToThreshold"
    period              = 300
    evaluation_periods  = 1
    datapoints_to_alarm = 1
    # Log metrics emit only when a line matches.
    treat_missing_data = "notBreaching"
  }

  alarm_definitions = {
    "alb-elb-5xx" = {
      per     = "none"
      summary = "The ALB itself answered more than {threshold} % of requests with 5xx (no healthy target, target connection failure or timeout)."
      queries = [
        { id = "errors", metric = "HTTPCode_ELB_5XX_Count", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb" } },
        { id = "requests", metric = "RequestCount", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb" } },
        # Below alb5xx_min_requests requests a minute, a handful of errors is no rate.
        { id = "rate", expression = "IF(FILL(requests, 0) >= ${local.alb5xx_min_requests}, 100 * FILL(errors, 0) / requests, 0)", label = "ELB 5xx %", return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 2
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      # No requests produce no data points: nothing is failing.
      treat_missing_data = "notBreaching"
    }

    "alb-elb-4xx" = {
      per     = "none"
      summary = "The ALB itself answered more than {threshold} % of requests with 4xx: requests no rule routes (404 no route: CloudFront's headers or a host name do not match), or requests it refused as malformed."
      queries = [
        { id = "errors", metric = "HTTPCode_ELB_4XX_Count", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb" } },
        { id = "requests", metric = "RequestCount", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb" } },
        { id = "rate", expression = "IF(FILL(requests, 0) >= ${local.alb5xx_min_requests}, 100 * FILL(errors, 0) / requests, 0)", label = "ELB 4xx %", return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 10
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      # No requests produce no data points: nothing is refused.
      treat_missing_data = "notBreaching"
    }

    "cloudfront-5xx-rate" = {
      per     = "distribution"
      summary = "More than {threshold} % of a CloudFront distribution's requests were answered with 5xx (the origin's own, or CloudFront's 502/504 when it cannot reach or wait for the ALB)."
      queries = [
        { id = "rate", metric = "5xxErrorRate", namespace = "AWS/CloudFront", stat = "Average", dims = { DistributionId = "distribution", Region = "global" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 5
      period              = 300
      evaluation_periods  = 3
      datapoints_to_alarm = 2
      # CloudFront publishes no rate without requests: nothing is failing.
      treat_missing_data = "notBreaching"
    }

    "cloudfront-origin-latency" = {
      per     = "distribution"
      summary = "The average time from CloudFront to the first byte of the ALB's answer exceeded {threshold} ms on a distribution."
      queries = [
        { id = "latency", metric = "OriginLatency", namespace = "AWS/CloudFront", stat = "Average", dims = { DistributionId = "distribution", Region = "global" }, return = true },
      ]
      comparison = "GreaterThanThreshold"
      threshold  = 2000
      # The gateway's first byte includes the tool's own work (like alb-latency-p95).
      thresholds_by_instance = { gateway = 10000 }
      period                 = 300
      evaluation_periods     = 3
      datapoints_to_alarm    = 3
      # OriginLatency is an additional metric (the cloudfront module subscribes to it);
      # no requests, no samples.
      treat_missing_data = "notBreaching"
    }

    "alb-target-5xx" = {
      per     = "target_group"
      summary = "More than {threshold} % of the requests a service answered were 5xx."
      queries = [
        { id = "errors", metric = "HTTPCode_Target_5XX_Count", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb", TargetGroup = "tg" } },
        { id = "requests", metric = "RequestCount", namespace = "AWS/ApplicationELB", stat = "Sum", dims = { LoadBalancer = "lb", TargetGroup = "tg" } },
        { id = "rate", expression = "IF(FILL(requests, 0) >= ${local.alb5xx_min_requests}, 100 * FILL(errors, 0) / requests, 0)", label = "target 5xx %", return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 5
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 3
      # No requests produce no data points: nothing is failing.
      treat_missing_data = "notBreaching"
    }

    "alb-latency-p95" = {
      per     = "target_group"
      summary = "The 95th percentile time to the first response byte of a service exceeded {threshold} seconds."
      queries = [
        { id = "p95", metric = "TargetResponseTime", namespace = "AWS/ApplicationELB", stat = "p95", dims = { LoadBalancer = "lb", TargetGroup = "tg" }, return = true },
      ]
      comparison = "GreaterThanThreshold"
      threshold  = 1
      # The gateway's time to first byte includes the upstream tool's own work
      # (upstream.first_byte_timeout_ms is 60 s), so it gets a wider bound.
      thresholds_by_instance = { gateway = 5 }
      period                 = 300
      evaluation_periods     = 3
      datapoints_to_alarm    = 3
      # No requests produce no latency samples: nothing is slow.
      treat_missing_data = "notBreaching"
    }

    "alb-latency-p99" = {
      per     = "target_group"
      summary = "The 99th percentile time to the first response byte of a service exceeded {threshold} seconds."
      queries = [
        { id = "p99", metric = "TargetResponseTime", namespace = "AWS/ApplicationELB", stat = "p99", dims = { LoadBalancer = "lb", TargetGroup = "tg" }, return = true },
      ]
      comparison             = "GreaterThanThreshold"
      threshold              = 2.5
      thresholds_by_instance = { gateway = 20, keycloak = 3 }
      period                 = 300
      evaluation_periods     = 3
      datapoints_to_alarm    = 3
      # No requests produce no latency samples: nothing is slow.
      treat_missing_data = "notBreaching"
    }

    "alb-unhealthy-hosts" = {
      per     = "target_group"
      summary = "At least one task of a service failed the ALB health check for 5 minutes."
      queries = [
        { id = "unhealthy", metric = "UnHealthyHostCount", namespace = "AWS/ApplicationELB", stat = "Maximum", dims = { LoadBalancer = "lb", TargetGroup = "tg" }, return = true },
      ]
      comparison          = "GreaterThanOrEqualToThreshold"
      threshold           = 1
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 5
      # The ALB reports this every minute while the target group is attached; a gap is a
      # reporting gap, not a sick task (alb-no-healthy-hosts covers the empty group).
      treat_missing_data = "notBreaching"
    }

    "alb-no-healthy-hosts" = {
      per     = "target_group"
      summary = "A service has no healthy task behind the ALB: it is down for its clients."
      queries = [
        { id = "healthy", metric = "HealthyHostCount", namespace = "AWS/ApplicationELB", stat = "Minimum", dims = { LoadBalancer = "lb", TargetGroup = "tg" }, return = true },
      ]
      comparison          = "LessThanThreshold"
      threshold           = 1
      period              = 60
      evaluation_periods  = 3
      datapoints_to_alarm = 3
      # Silence here means the target group stopped reporting (detached, deleted): treat it
      # as the outage it most likely is.
      treat_missing_data = "breaching"
    }

    "ecs-cpu" = {
      per     = "ecs_service"
      summary = "A service's tasks used more than {threshold} % of their CPU reservation for 15 minutes."
      queries = [
        { id = "cpu", metric = "CPUUtilization", namespace = "AWS/ECS", stat = "Average", dims = { ClusterName = "cluster", ServiceName = "service" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 80
      period              = 300
      evaluation_periods  = 3
      datapoints_to_alarm = 3
      # No running task reports no CPU; ecs-running-below-desired covers that case.
      treat_missing_data = "notBreaching"
    }

    "ecs-memory" = {
      per     = "ecs_service"
      summary = "A service's tasks used more than {threshold} % of their memory reservation for 15 minutes (next: OOM kills)."
      queries = [
        { id = "memory", metric = "MemoryUtilization", namespace = "AWS/ECS", stat = "Average", dims = { ClusterName = "cluster", ServiceName = "service" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 85
      period              = 300
      evaluation_periods  = 3
      datapoints_to_alarm = 3
      # No running task reports no memory; ecs-running-below-desired covers that case.
      treat_missing_data = "notBreaching"
    }

    "ecs-running-below-desired" = {
      per     = "ecs_service"
      summary = "A service ran fewer tasks than desired for most of 10 minutes: tasks are stopping or cannot start (crash loop, failed health checks, image pull or secret errors)."
      queries = [
        { id = "desired", metric = "DesiredTaskCount", namespace = "ECS/ContainerInsights", stat = "Maximum", dims = { ClusterName = "cluster", ServiceName = "service" } },
        { id = "running", metric = "RunningTaskCount", namespace = "ECS/ContainerInsights", stat = "Minimum", dims = { ClusterName = "cluster", ServiceName = "service" } },
        { id = "missing", expression = "desired - running", label = "tasks missing", return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 0
      period              = 60
      evaluation_periods  = 10
      datapoints_to_alarm = 8
      # No data means Container Insights is off for the cluster: show INSUFFICIENT_DATA in the
      # console (a setup fault to fix) rather than page or pretend all is well.
      treat_missing_data = "missing"
    }

    "aurora-cpu" = {
      per     = "none"
      summary = "Aurora PostgreSQL (auth-server, Keycloak) CPU above {threshold} % for 15 minutes."
      queries = [
        { id = "cpu", metric = "CPUUtilization", namespace = "AWS/RDS", stat = "Maximum", dims = { DBClusterIdentifier = "aurora" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 80
      period              = 300
      evaluation_periods  = 3
      datapoints_to_alarm = 3
      # A Serverless v2 cluster that auto-pauses stops reporting: that is not an incident.
      treat_missing_data = "notBreaching"
    }

    "aurora-connections" = {
      per     = "none"
      summary = "Aurora PostgreSQL holds more than {threshold} connections (auth-server pools of store.pool_size per task plus Keycloak's pool); new connections will soon be refused."
      queries = [
        { id = "connections", metric = "DatabaseConnections", namespace = "AWS/RDS", stat = "Maximum", dims = { DBClusterIdentifier = "aurora" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 200
      period              = 300
      evaluation_periods  = 2
      datapoints_to_alarm = 2
      # A paused Serverless v2 cluster has no connections and reports nothing.
      treat_missing_data = "notBreaching"
    }

    "aurora-free-local-storage" = {
      per     = "none"
      summary = "An Aurora instance has less than {threshold} bytes of local storage (temporary files, logs) left."
      queries = [
        { id = "free", metric = "FreeLocalStorage", namespace = "AWS/RDS", stat = "Minimum", dims = { DBClusterIdentifier = "aurora" }, return = true },
      ]
      comparison          = "LessThanThreshold"
      threshold           = 2147483648 # 2 GiB
      period              = 300
      evaluation_periods  = 2
      datapoints_to_alarm = 2
      # A paused Serverless v2 cluster reports nothing; its storage is not filling up.
      treat_missing_data = "notBreaching"
    }

    "aurora-deadlocks" = {
      per     = "none"
      summary = "Aurora PostgreSQL reported deadlocks; the auth-server takes per-user advisory locks and should never deadlock."
      queries = [
        { id = "deadlocks", metric = "Deadlocks", namespace = "AWS/RDS", stat = "Maximum", dims = { DBClusterIdentifier = "aurora" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 0
      period              = 300
      evaluation_periods  = 2
      datapoints_to_alarm = 2
      # No data (a paused cluster) means no deadlocks.
      treat_missing_data = "notBreaching"
    }

    "documentdb-cpu" = {
      per     = "none"
      summary = "DocumentDB (the registry's store) CPU above {threshold} % for 15 minutes."
      queries = [
        { id = "cpu", metric = "CPUUtilization", namespace = "AWS/DocDB", stat = "Maximum", dims = { DBClusterIdentifier = "docdb" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 80
      period              = 300
      evaluation_periods  = 3
      datapoints_to_alarm = 3
      # Provisioned DocumentDB instances always report; silence means the instances are gone.
      treat_missing_data = "breaching"
    }

    "documentdb-connections" = {
      per     = "none"
      summary = "DocumentDB holds more than {threshold} connections (registry pools per task, mcpgw-setup runs); the instance limit is near."
      queries = [
        { id = "connections", metric = "DatabaseConnections", namespace = "AWS/DocDB", stat = "Maximum", dims = { DBClusterIdentifier = "docdb" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 400
      period              = 300
      evaluation_periods  = 2
      datapoints_to_alarm = 2
      # documentdb-cpu already pages on a silent cluster; no second page for the same gap.
      treat_missing_data = "notBreaching"
    }

    "waf-blocked-spike" = {
      per     = "none"
      enabled = local.has_waf
      summary = "The WAF blocked more than {threshold} requests in 5 minutes: an attack, a scanner, or a rule blocking real clients."
      queries = [
        { id = "blocked", metric = "BlockedRequests", namespace = "AWS/WAFV2", stat = "Sum", dims = { WebACL = "waf_acl", Region = "waf_region", Rule = "waf_rule" }, return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 500
      period              = 300
      evaluation_periods  = 1
      datapoints_to_alarm = 1
      # WAF publishes BlockedRequests only when it blocks something.
      treat_missing_data = "notBreaching"
    }

    "gateway-upstream-errors" = {
      per     = "none"
      summary = "More than {threshold} % of tool calls through the gateway failed to reach their MCP server (connect, transport, 5xx, first-byte timeout)."
      queries = [
        { id = "errors", metric = "gateway-upstream-errors", namespace = "LOG", stat = "Sum", dims = {} },
        { id = "calls", metric = "gateway-tool-calls", namespace = "LOG", stat = "Sum", dims = {} },
        # Below tool_calls_min calls in 5 minutes a single failing server is no rate.
        { id = "rate", expression = "IF(FILL(calls, 0) >= ${local.tool_calls_min}, 100 * FILL(errors, 0) / calls, 0)", label = "upstream error %", return = true },
      ]
      comparison          = "GreaterThanThreshold"
      threshold           = 10
      period              = 300
      evaluation_periods  = 2
      datapoints_to_alarm = 2
      # Log metrics emit only when a line matches: no tool calls, nothing failing.
      treat_missing_data = "notBreaching"
    }

    "auth-denial-spike" = {
      per     = "none"
      summary = "More than {threshold} refused credentials or denied requests in 5 minutes: gateway 401s and policy denials, auth-server 401s (failed logins, bad tokens at /validate), failed OIDC sign-ins and Keycloak LOGIN_ERROR events."
      queries = concat(
        [
          { id = "gw401", metric = "gateway-unauthorized", namespace = "LOG", stat = "Sum", dims = {} },
          { id = "gwdeny", metric = "gateway-policy-denials", namespace = "LOG", stat = "Sum", dims = {} },
          { id = "auth401", metric = "auth-unauthorized", namespace = "LOG", stat = "Sum", dims = {} },
          { id = "oidc", metric = "auth-oidc-failures", namespace = "LOG", stat = "Sum", dims = {} },
        ],
        [for q in [{ id = "kc", metric = "keycloak-login-errors", namespace = "LOG", stat = "Sum", dims = {} }] : q if contains(keys(var.log_group_names), "keycloak")],
        [{
          id         = "denials"
          expression = "FILL(gw401, 0) + FILL(gwdeny, 0) + FILL(auth401, 0) + FILL(oidc, 0)${contains(keys(var.log_group_names), "keycloak") ? " + FILL(kc, 0)" : ""}"
          label      = "denials"
          return     = true
        }],
      )
      comparison          = "GreaterThanThreshold"
      threshold           = 200
      period              = 300
      evaluation_periods  = 1
      datapoints_to_alarm = 1
      # Log metrics emit only when a line matches: no lines, no denials.
      treat_missing_data = "notBreaching"
    }

    "gateway-snapshot-stale" = {
      per     = "none"
      summary = "A gateway's routing snapshot (routes, policy, credentials) has not been confirmed by the registry for {threshold} seconds or more: it cannot reach the registry."
      queries = [
        { id = "age", metric = "gateway-snapshot-age-seconds", namespace = "LOG", stat = "Maximum", dims = {}, return = true },
      ]
      comparison = "GreaterThanOrEqualToThreshold"
      threshold  = 300
      # While polls fail the gateway logs the snapshot's age once a minute
      # (services/gateway/src/sync.rs), so each 5-minute period of an outage has lines.
      period              = 300
      evaluation_periods  = 1
      datapoints_to_alarm = 1
      # No line means no failed poll: the gateway is in sync.
      treat_missing_data = "notBreaching"
    }

    "gateway-route-unusable" = merge(local.log_line_alarm, {
      per     = "none"
      summary = "The gateway could not build a route (its sealed upstream credentials did not open, or a literal address is refused by the egress policy); requests to that server get 502."
      queries = [
        { id = "unusable", metric = "gateway-route-unusable", namespace = "LOG", stat = "Sum", dims = {}, return = true },
      ]
      threshold = 1
    })

    "gateway-audit-dropped" = merge(local.log_line_alarm, {
      per     = "none"
      summary = "The registry refused a batch of gateway audit events as invalid; the gateway dropped them from its queue (they remain only in the gateway's log)."
      queries = [
        { id = "dropped", metric = "gateway-audit-dropped", namespace = "LOG", stat = "Sum", dims = {}, return = true },
      ]
      threshold = 1
    })

    "registry-store-unavailable" = merge(local.log_line_alarm, {
      per     = "none"
      summary = "The registry could not reach DocumentDB ({threshold} or more \"store unavailable\" errors in 5 minutes); its API answers 503 while gateways keep serving their last snapshot."
      queries = [
        { id = "errors", metric = "registry-store-unavailable", namespace = "LOG", stat = "Sum", dims = {}, return = true },
      ]
      threshold = 5
    })

    "auth-store-unavailable" = merge(local.log_line_alarm, {
      per     = "none"
      summary = "The auth-server could not reach Aurora PostgreSQL ({threshold} or more \"store unavailable\" errors in 5 minutes); logins, token minting and /validate of vended tokens fail with 503."
      queries = [
        { id = "errors", metric = "auth-store-unavailable", namespace = "LOG", stat = "Sum", dims = {}, return = true },
      ]
      threshold = 5
    })
  }

  # Values the `dims` of a query refer to.
  alarm_context = {
    lb         = var.alb_arn_suffix
    cluster    = var.ecs_cluster_name
    aurora     = var.aurora_cluster_id
    docdb      = var.documentdb_cluster_id
    waf_acl    = var.waf_web_acl_name
    waf_region = var.waf_region
    waf_rule   = "ALL"
    global     = "Global"
  }

  # Which instances each `per` produces: instance key => extra context values.
  alarm_instance_sets = {
    none         = { "" = {} }
    target_group = { for svc, suffix in var.target_group_arn_suffixes : svc => { tg = suffix } }
    ecs_service  = { for svc, name in var.ecs_service_names : svc => { service = name } }
    distribution = { for svc, id in var.cloudfront_distribution_ids : svc => { distribution = id } }
  }

  # Every alarm to create, keyed "<key>" or "<key>/<service>".
  alarms = merge([
    for key, def in local.alarm_definitions : {
      for inst, extra in local.alarm_instance_sets[def.per] :
      (inst == "" ? key : "${key}/${inst}") => {
        key       = key
        name      = inst == "" ? "${var.name_prefix}-${key}" : "${var.name_prefix}-${key}-${inst}"
        summary   = def.summary
        queries   = def.queries
        context   = merge(local.alarm_context, extra)
        threshold = lookup(var.threshold_overrides, key, lookup(try(def.thresholds_by_instance, {}), inst, def.threshold))
        def       = def
        edge      = def.per == "distribution"
      }
    } if try(def.enabled, true)
  ]...)
}

# The alarms, created by alarm-set/ (one CloudWatch alarm per entry, built from metric queries):
# the CloudFront ones in us-east-1, where CloudFront publishes its metrics, notifying the topic
# there; all others in this module's region. A provider cannot differ between instances of one
# resource, hence the two calls.
module "regional_alarms" {
  source           = "./alarm-set"
  alarms           = { for k, a in local.alarms : k => a if !a.edge }
  topic_arn        = aws_sns_topic.alarms.arn
  runbook_base_url = var.runbook_base_url
  log_namespace    = local.log_namespace
  tags             = var.tags
  # Alarms on log metrics would sit in INSUFFICIENT_DATA until the filters exist.
  depends_on = [aws_cloudwatch_log_metric_filter.this, terraform_data.threshold_overrides]
}

module "edge_alarms" {
  source           = "./alarm-set"
  alarms           = { for k, a in local.alarms : k => a if a.edge }
  topic_arn        = length(aws_sns_topic.edge) > 0 ? aws_sns_topic.edge[0].arn : ""
  runbook_base_url = var.runbook_base_url
  log_namespace    = local.log_namespace
  tags             = var.tags
  providers = {
    aws = aws.us_east_1
  }
}

moved {
  from = aws_cloudwatch_metric_alarm.this
  to   = module.regional_alarms.aws_cloudwatch_metric_alarm.this
}

resource "terraform_data" "threshold_overrides" {
  input = var.threshold_overrides
  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.threshold_overrides), keys(local.alarm_definitions))) == 0
      error_message = "threshold_overrides names alarms that do not exist: ${join(", ", setsubtract(keys(var.threshold_overrides), keys(local.alarm_definitions)))}. Known keys: ${join(", ", keys(local.alarm_definitions))}."
    }
  }
}

# Warns (does not fail) when the WAF alarm would watch a region other than its own: CloudWatch
# alarms only see metrics of the region they live in, and a CloudFront-scoped web ACL publishes
# its metrics in us-east-1.
check "waf_metrics_region" {
  assert {
    condition     = !local.has_waf || var.waf_region == data.aws_region.current.name
    error_message = "waf_region (${var.waf_region}) differs from this module's region (${data.aws_region.current.name}): the waf-blocked-spike alarm will never see data. Instantiate the monitoring module with a provider in ${var.waf_region}, or attach a REGIONAL web ACL to the ALB."
  }
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}
