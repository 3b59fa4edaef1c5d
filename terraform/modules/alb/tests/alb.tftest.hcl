# Plans the module against a mocked AWS provider (no credentials, no network) and checks the
# security group's rule budget (issue 19, item 1): a rule that references CloudFront's prefix
# list weighs its max_entries (55) against the quota of 60 inbound rules per group.
#   cd terraform/modules/alb && terraform init -backend=false -plugin-dir=/opt/tf-plugins && terraform test

mock_provider "aws" {
  mock_data "aws_ec2_managed_prefix_list" {
    defaults = { id = "pl-3b927c52", max_entries = 55 }
  }
}

variables {
  name_prefix          = "mcpgw-test"
  vpc_id               = "vpc-0123456789abcdef0"
  vpc_cidr             = "10.0.0.0/16"
  public_subnet_ids    = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  https                = true
  certificate_arn      = "arn:aws:acm:eu-west-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
  cloudfront_origin    = true
  origin_verify_secret = "0123456789abcdef0123456789abcdef"
  services = {
    registry = { target_group_arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/r/0123456789abcdef", hostnames = ["registry.example.com"] }
  }
  access_logs_bucket = "mcpgw-test-logs"
}

run "behind_cloudfront_with_a_certificate_only_443_is_open_to_the_prefix_list" {
  command = plan
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.cloudfront) == 1 && aws_vpc_security_group_ingress_rule.cloudfront[0].from_port == 443
    error_message = "CloudFront reaches an ALB with a certificate on 443 only: one prefix-list rule (two weigh 110 > 60)"
  }
  assert {
    condition     = terraform_data.ingress_rule_budget.input == 55
    error_message = "the inbound rules must weigh exactly the one prefix-list rule"
  }
}

run "behind_cloudfront_without_a_certificate_only_80_is_open_to_the_prefix_list" {
  command = plan
  variables {
    https           = false
    certificate_arn = ""
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.cloudfront) == 1 && aws_vpc_security_group_ingress_rule.cloudfront[0].from_port == 80
    error_message = "CloudFront's default domain reaches the ALB over HTTP on 80 only"
  }
}

run "rules_weighing_more_than_the_quota_fail_at_plan" {
  command = plan
  variables {
    security_group_rule_quota = 50
  }
  expect_failures = [terraform_data.ingress_rule_budget]
}

run "direct_ingress_counts_one_rule_per_block_and_port" {
  command = plan
  variables {
    cloudfront_origin   = false
    ingress_cidr_blocks = ["198.51.100.0/24", "203.0.113.0/24"]
    nat_cidr_blocks     = ["192.0.2.7/32"]
  }
  assert {
    condition     = terraform_data.ingress_rule_budget.input == 6
    error_message = "two blocks and one NAT address on ports 80 and 443 are six rules"
  }
}
