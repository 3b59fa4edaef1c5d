# Metrics from the services' own logs.
#
# Every service writes one JSON object per line on stdout (services/core/src/telemetry.rs,
# `init_logging`: tracing-subscriber's JSON format with `flatten_event(true)` and
# `with_current_span(true)`), which the awslogs driver ships to the log groups in
# var.log_group_names. A line looks like this (captured from the registry binary):
#
#   {"timestamp":"…","level":"INFO","message":"request finished","http.status":401,
#    "duration_ms":0.22,"target":"mcpgw_core::telemetry",
#    "span":{"http.method":"GET","http.route":"/api/v1/servers","request_id":"…","name":"request"}}
#
# Event fields are top-level keys; `message`, `level` and `target` are always present. Keys
# with a dot (`http.status`) cannot be addressed by a JSON selector (`$.http.status` means
# {"http":{"status":…}}), so the two filters on the HTTP status use a regular expression on
# the raw line instead (`.` matches the quote between key and colon). A log group accepts at
# most five regex filters; this module uses one per group.
#
# Each filter emits 1 per matching line (or a field's value) into the namespace below, with no
# dimensions (no per-request cardinality, no extra cost); no line means no data point, and the
# alarms treat that as "nothing happened".

locals {
  log_namespace = "mcpgw/${var.name_prefix}"

  log_metrics_all = {
    # services/gateway/src/audit.rs:41 `record`: every tools/call that passed the policy and
    # every denial is logged with target "mcpgw::audit", message "mcp audit event", and the
    # fields server, method, tool, subject, client_id, decision, reason, matched_rule, status,
    # latency_ms. `decision` is logged with `?` (Debug), i.e. "Allowed"/"Denied"; the lower-case
    # serde form is matched too so a switch to Display does not silently break the filter.
    "gateway-tool-calls" = {
      service = "gateway"
      pattern = "{ $.target = \"mcpgw::audit\" && $.method = \"tools/call\" && ($.decision = \"Allowed\" || $.decision = \"allowed\") }"
      value   = "1"
    }
    # services/gateway/src/proxy.rs:969 `UpstreamFailure::status_label` ("upstream_error" or
    # "timeout") and the finish(…, "upstream_error") calls at proxy.rs:788, 814, 1451, 1460,
    # 1513 and finish(…, "timeout") at 1439: the audit `status` of a tool call the upstream
    # failed (connect, transport, 5xx stream end, first-byte timeout, unusable route).
    "gateway-upstream-errors" = {
      service = "gateway"
      pattern = "{ $.target = \"mcpgw::audit\" && ($.status = \"upstream_error\" || $.status = \"timeout\") }"
      value   = "1"
    }
    # services/gateway/src/proxy.rs:108 `Outcome::denied` → audit.rs:41: policy refusals
    # (no_rule_for_server, tool_not_allowed, …), write_protected, tool_not_approved,
    # rate_limited.
    "gateway-policy-denials" = {
      service = "gateway"
      pattern = "{ $.target = \"mcpgw::audit\" && ($.decision = \"Denied\" || $.decision = \"denied\") }"
      value   = "1"
    }
    # Refused tokens are not audited (docs/MCP-GATEWAY.md "Audit events": unauthenticated
    # requests produce no event); the only log line is core's `request finished` with
    # "http.status":401 (services/core/src/telemetry.rs:130), emitted for every request.
    "gateway-unauthorized" = {
      service = "gateway"
      pattern = "%http.status.:401%"
      value   = "1"
    }
    # services/gateway/src/sync.rs (Refresher::run): "registry unreachable; serving the
    # snapshot in use", logged at a gateway's first failed poll and then once a minute while
    # polls keep failing, with `snapshot_age_seconds` = seconds since the registry last
    # confirmed the gateway's routing snapshot (the Prometheus gauge
    # mcpgw_gateway_snapshot_age_seconds, which CloudWatch does not receive).
    "gateway-snapshot-age-seconds" = {
      service = "gateway"
      pattern = "{ $.message = \"registry unreachable; serving the snapshot in use\" }"
      value   = "$.snapshot_age_seconds"
    }
    # services/gateway/src/routes.rs:164 "route unusable" (a route whose sealed credentials
    # did not open when the snapshot was applied) and proxy.rs:363 "request to an unusable
    # route" (a request to it, answered 502).
    "gateway-route-unusable" = {
      service = "gateway"
      pattern = "{ $.message = \"route unusable\" || $.message = \"request to an unusable route\" }"
      value   = "1"
    }
    # services/gateway/src/audit.rs:125: "the registry refused an audit batch as invalid;
    # dropped (the events are in this log)". Events dropped because the queue was full are
    # counted only in Prometheus (mcpgw_gateway_audit_dropped_total), not logged one by one.
    "gateway-audit-dropped" = {
      service = "gateway"
      pattern = "{ $.message = \"the registry refused an audit batch as invalid*\" }"
      value   = "1"
    }
    # Failed local logins answer 401 (services/auth-server/src/api/login.rs:409
    # `login_form(state, StatusCode::UNAUTHORIZED, …)`) and so does /validate for a bad token
    # (api/validate.rs:145 → error.rs:112 `invalid_token`); neither logs more than core's `request finished` line.
    "auth-unauthorized" = {
      service = "auth-server"
      pattern = "%http.status.:401%"
      value   = "1"
    }
    # services/auth-server/src/api/oidc.rs:58: WARN "OIDC sign-in failed" (field oidc.provider).
    "auth-oidc-failures" = {
      service = "auth-server"
      pattern = "{ $.message = \"OIDC sign-in failed\" }"
      value   = "1"
    }
    # services/auth-server/src/error.rs:143: ERROR "store unavailable" (Aurora unreachable;
    # the request is answered 503).
    "auth-store-unavailable" = {
      service = "auth-server"
      pattern = "{ $.message = \"store unavailable\" }"
      value   = "1"
    }
    # services/registry/src/error.rs:203: ERROR "store unavailable" (DocumentDB unreachable;
    # the request is answered 503).
    "registry-store-unavailable" = {
      service = "registry"
      pattern = "{ $.message = \"store unavailable\" }"
      value   = "1"
    }
    # Not this repository's code: Keycloak's default jboss-logging event listener logs failed
    # logins and client authentications (bad M2M client secrets) as WARN lines containing
    # type="LOGIN_ERROR" / type="CLIENT_LOGIN_ERROR". Created only when a keycloak log group
    # is given.
    "keycloak-login-errors" = {
      service = "keycloak"
      pattern = "\"LOGIN_ERROR\""
      value   = "1"
    }
  }

  log_metrics = { for k, v in local.log_metrics_all : k => v if contains(keys(var.log_group_names), v.service) }
}

# One metric filter per entry of local.log_metrics: turns matching log lines of a service's
# log group into the custom metric <name_prefix>/… named after the entry.
resource "aws_cloudwatch_log_metric_filter" "this" {
  for_each = local.log_metrics

  name           = "${var.name_prefix}-${each.key}"
  log_group_name = var.log_group_names[each.value.service]
  pattern        = each.value.pattern

  metric_transformation {
    name      = each.key
    namespace = local.log_namespace
    value     = each.value.value
    unit      = "None"
  }
}
