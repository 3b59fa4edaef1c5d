# Plans the module against a mocked AWS provider (no credentials, no network):
#   cd terraform/modules/monitoring && terraform init -backend=false -plugin-dir=/opt/tf-plugins && terraform test
# The account id and region below exist only in this test.

# CloudFront's alarms and their topic (us-east-1).
mock_provider "aws" {
  alias = "us_east_1"
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:111122223333:mcpgw-test-edge-alarms" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:us-east-1:111122223333:alarm:mock" }
  }
}

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  # Generated ARNs would fail the provider's ARN checks.
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:111122223333:mcpgw-test-alarms" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:mock" }
  }
}

variables {
  name_prefix    = "mcpgw-test"
  alb_arn_suffix = "app/mcpgw-test/0123456789abcdef"
  target_group_arn_suffixes = {
    registry      = "targetgroup/mcpgw-registry/0123456789abcdef"
    "auth-server" = "targetgroup/mcpgw-auth/0123456789abcdef"
    gateway       = "targetgroup/mcpgw-gateway/0123456789abcdef"
    keycloak      = "targetgroup/mcpgw-keycloak/0123456789abcdef"
  }
  ecs_cluster_name = "mcpgw-test"
  ecs_service_names = {
    registry      = "mcpgw-test-registry"
    "auth-server" = "mcpgw-test-auth-server"
    gateway       = "mcpgw-test-gateway"
    keycloak      = "mcpgw-test-keycloak"
  }
  cloudfront_distribution_ids = {
    registry = "E2QWRUHAPOMQZL"
    gateway  = "E3QWRUHAPOMQZM"
  }
  aurora_cluster_id     = "mcpgw-test-aurora"
  documentdb_cluster_id = "mcpgw-test-docdb"
  waf_web_acl_name      = "mcpgw-test"
  waf_region            = "eu-west-1"
  log_group_names = {
    registry      = "/mcpgw-test/registry"
    "auth-server" = "/mcpgw-test/auth-server"
    gateway       = "/mcpgw-test/gateway"
    keycloak      = "/mcpgw-test/keycloak"
  }
  alarm_email      = "oncall@example.com"
  runbook_base_url = "https://github.com/example/mcpgw/blob/main/docs/runbook.md"
  kms_key_arn      = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
}

run "everything" {
  # apply (against the mock) so the dashboard body, which holds alarm ARNs, is known.
  command = apply

  assert {
    # 5 ALB per-target-group definitions × 4 + 3 ECS × 4 + 16 single alarms.
    condition     = length(module.regional_alarms.alarms) == 4 * 5 + 3 * 4 + 16
    error_message = "unexpected alarm count: ${length(module.regional_alarms.alarms)}"
  }
  # CloudFront's metrics exist only in us-east-1: its alarms and their topic are created there.
  assert {
    condition     = length(module.edge_alarms.alarms) == 2 * 2 && length(aws_sns_topic.edge) == 1 && length(aws_sns_topic_subscription.edge_email) == 1
    error_message = "two CloudFront alarms per distribution, notifying the us-east-1 topic and its subscriber"
  }
  assert {
    condition     = module.edge_alarms.alarms["cloudfront-origin-latency/gateway"].threshold == 10000 && alltrue([for a in module.edge_alarms.alarms : strcontains(a.alarm_description, "Runbook: ")])
    error_message = "the gateway's origin latency has its wider bound, and every CloudFront alarm links its runbook entry"
  }
  assert {
    condition     = alltrue([for a in module.regional_alarms.alarms : startswith(a.alarm_name, "mcpgw-test-")])
    error_message = "every alarm name starts with the prefix"
  }
  assert {
    condition = alltrue([for k, a in module.regional_alarms.alarms :
    endswith(a.alarm_description, "Runbook: https://github.com/example/mcpgw/blob/main/docs/runbook.md#${split("/", k)[0]}")])
    error_message = "every description ends with the runbook link of its key"
  }
  assert {
    condition     = alltrue([for a in module.regional_alarms.alarms : !strcontains(a.alarm_description, "{threshold}")])
    error_message = "the threshold placeholder is filled in"
  }
  assert {
    condition     = strcontains(module.regional_alarms.alarms["alb-latency-p99/gateway"].alarm_description, "exceeded 20 seconds")
    error_message = "the per-service threshold appears in the description"
  }
  assert {
    condition     = alltrue([for a in module.regional_alarms.alarms : length(a.alarm_description) <= 1024])
    error_message = "alarm descriptions fit CloudWatch's 1024 characters"
  }
  assert {
    condition     = alltrue([for a in module.regional_alarms.alarms : length([for q in a.metric_query : q if q.return_data]) == 1])
    error_message = "each alarm returns exactly one query"
  }
  assert {
    condition     = module.regional_alarms.alarms["alb-latency-p95/gateway"].threshold == 5 && module.regional_alarms.alarms["alb-latency-p95/registry"].threshold == 1
    error_message = "per-service thresholds apply"
  }
  assert {
    condition     = length(aws_cloudwatch_log_metric_filter.this) == 12
    error_message = "one metric filter per log metric, keycloak included"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.email) == 1 && aws_sns_topic.alarms.kms_master_key_id == var.kms_key_arn
    error_message = "encrypted topic with the e-mail subscription"
  }
  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets) == 1 + 17 + 1
    error_message = "alarm widget, 17 graphs, WAF graph"
  }
}

run "no_waf_no_keycloak_no_email" {
  command = apply

  variables {
    waf_web_acl_name = ""
    waf_region       = ""
    alarm_email      = ""
    log_group_names = {
      registry      = "/mcpgw-test/registry"
      "auth-server" = "/mcpgw-test/auth-server"
      gateway       = "/mcpgw-test/gateway"
    }
    threshold_overrides         = { "aurora-connections" = 400 }
    cloudfront_distribution_ids = {}
  }

  assert {
    condition     = length(module.edge_alarms.alarms) == 0 && length(aws_sns_topic.edge) == 0
    error_message = "no CloudFront alarms or us-east-1 topic without CloudFront"
  }
  assert {
    condition     = !contains(keys(module.regional_alarms.alarms), "waf-blocked-spike")
    error_message = "no WAF alarm without a web ACL"
  }
  assert {
    condition     = length(aws_cloudwatch_log_metric_filter.this) == 11 && length(aws_sns_topic_subscription.email) == 0
    error_message = "no keycloak filter, no subscription"
  }
  assert {
    condition     = module.regional_alarms.alarms["aurora-connections"].threshold == 400
    error_message = "threshold_overrides apply"
  }
  assert {
    condition     = length([for q in module.regional_alarms.alarms["auth-denial-spike"].metric_query : q if q.id == "kc"]) == 0
    error_message = "no keycloak series in the denial alarm"
  }
}

run "unknown_override_is_refused" {
  command = plan
  variables {
    threshold_overrides = { "no-such-alarm" = 1 }
  }
  expect_failures = [terraform_data.threshold_overrides]
}

run "bad_inputs_are_refused" {
  command = plan
  variables {
    alb_arn_suffix   = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/x/1"
    runbook_base_url = "https://example.com/runbook.md#top"
    log_group_names  = { registry = "/r" }
  }
  expect_failures = [var.alb_arn_suffix, var.runbook_base_url, var.log_group_names]
}
