# Plans the module against a mocked AWS provider (no credentials, no network) and checks that
# every cache behaviour of every distribution forwards Host to the origin (issue 19, item 4):
# over https-only CloudFront checks the ALB's certificate against the forwarded Host, and
# without it against the ELB name, which answers 502.
#   cd terraform/modules/cloudfront && terraform init -backend=false -plugin-dir=/opt/tf-plugins && terraform test

mock_provider "aws" {
  mock_data "aws_cloudfront_origin_request_policy" {
    defaults = { id = "216adef6-5c7f-47e4-b989-5492eafa07d3" }
  }
}

variables {
  name_prefix = "mcpgw-test"
  services = {
    registry = { alias = "registry.example.com" }
    keycloak = { alias = "kc.example.com" }
    gateway  = { alias = "mcp.example.com" }
  }
  origin_domain_name      = "mcpgw-test-alb-123.eu-west-1.elb.amazonaws.com"
  origin_verify_secret    = "0123456789abcdef0123456789abcdef"
  certificate_arn         = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
  logs_bucket_domain_name = "mcpgw-test-logs.s3.eu-west-1.amazonaws.com"
}

run "every_behaviour_forwards_host_to_the_https_origin" {
  command = plan
  assert {
    condition     = alltrue([for d in values(aws_cloudfront_distribution.this) : alltrue([for o in d.origin : o.custom_origin_config[0].origin_protocol_policy == "https-only"])])
    error_message = "with a certificate every distribution reaches the ALB over https-only"
  }
  assert {
    condition = alltrue(flatten([for d in values(aws_cloudfront_distribution.this) : [
      for b in concat(d.default_cache_behavior, d.ordered_cache_behavior) : b.origin_request_policy_id == data.aws_cloudfront_origin_request_policy.all_viewer.id
    ]]))
    error_message = "every cache behaviour (the console's assets and Keycloak's resources too) must use Managed-AllViewer, which forwards Host"
  }
  assert {
    condition     = length(aws_cloudfront_distribution.this["registry"].ordered_cache_behavior) == 1 && length(aws_cloudfront_distribution.this["keycloak"].ordered_cache_behavior) == 1
    error_message = "the registry and Keycloak each have their cached behaviour"
  }
}

run "a_read_timeout_above_the_quota_is_refused" {
  command = plan
  variables {
    origin_read_timeout_seconds = 181
  }
  expect_failures = [var.origin_read_timeout_seconds]
}
