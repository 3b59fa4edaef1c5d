# Plans the module against a mocked AWS provider (no credentials, no network) and checks the
# scope-down of the managed body rules (issue 19, item 8): on MCP endpoints (paths ending in
# /mcp) the SQL injection, XSS, path-traversal, remote-include and SSRF body rules only count,
# because tool arguments in JSON-RPC bodies are free text; everywhere else they block.
#   cd terraform/modules/waf && terraform init -backend=false -plugin-dir=/opt/tf-plugins && terraform test

mock_provider "aws" {}

variables {
  name_prefix         = "mcpgw-test"
  scope               = "REGIONAL"
  alb_arn             = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/mcpgw-test-alb/0123456789abcdef"
  log_destination_arn = "arn:aws:s3:::aws-waf-logs-mcpgw-test"
}

run "body_rules_count_in_their_groups_and_block_outside_mcp_endpoints" {
  command = plan
  assert {
    condition = alltrue([for r in aws_wafv2_web_acl.this.rule : toset([for o in r.statement[0].managed_rule_group_statement[0].rule_action_override : o.name]) == toset(
      r.name == "AWSManagedRulesCommonRuleSet" ? ["SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"] : ["SQLi_BODY", "SQLiExtendedPatterns_BODY"]
    ) if contains(["AWSManagedRulesCommonRuleSet", "AWSManagedRulesSQLiRuleSet"], r.name)])
    error_message = "the common and SQLi groups must set exactly their body rules to count (and no other rule)"
  }
  assert {
    condition     = length([for r in aws_wafv2_web_acl.this.rule : r if r.name == "managed-body-rules-except-mcp"]) == 1
    error_message = "the web ACL must have the rule that blocks the body rules' labels outside MCP endpoints"
  }
  assert {
    condition = alltrue([for r in aws_wafv2_web_acl.this.rule : (
      length(r.action[0].block) == 1 && r.priority > 14 &&
      length(r.statement[0].and_statement[0].statement[0].or_statement[0].statement) == 6 &&
      r.statement[0].and_statement[0].statement[1].not_statement[0].statement[0].byte_match_statement[0].search_string == "/mcp"
    ) if r.name == "managed-body-rules-except-mcp"])
    error_message = "after the managed groups, that rule must block the six body-rule labels everywhere but on paths ending in /mcp"
  }
}

# Issue 19, item 9: the auth-server calls Keycloak's token endpoint through its public URL for
# every sign-in, so the platform's NAT addresses must not count against the sign-in limit.
run "the_sign_in_rate_limit_does_not_count_the_platforms_own_addresses" {
  command = plan
  variables {
    login_rate_exempt_cidr_blocks = ["198.51.100.7/32", "198.51.100.8/32"]
  }
  assert {
    condition     = toset(aws_wafv2_ip_set.login_exempt.addresses) == toset(["198.51.100.7/32", "198.51.100.8/32"])
    error_message = "the exempt addresses form their own IP set"
  }
  assert {
    condition = alltrue([for r in aws_wafv2_web_acl.this.rule : (
      length(r.statement[0].rate_based_statement[0].scope_down_statement[0].and_statement[0].statement[1].not_statement) == 1 &&
      length(r.statement[0].rate_based_statement[0].scope_down_statement[0].and_statement[0].statement[0].or_statement[0].statement) == 7
    ) if r.name == "rate-limit-login-and-token"])
    error_message = "the sign-in rate limit counts the sign-in and token paths, except from the exempt addresses"
  }
}
