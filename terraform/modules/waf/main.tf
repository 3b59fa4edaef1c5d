# A WAFv2 web ACL for CloudFront (scope CLOUDFRONT, created in us-east-1 by the caller's
# provider) or for the ALB (scope REGIONAL). Rules, in order:
#   1. Keycloak's /admin only from admin_cidr_blocks (when admin_host is set);
#   2. a tighter per-IP rate limit on sign-in and token paths (password guessing, token abuse),
#      not counting the platform's own NAT addresses (login_rate_exempt_cidr_blocks): the
#      auth-server calls Keycloak's token endpoint through its public URL, so every user's
#      sign-in arrives from those few addresses;
#   3. a per-IP rate limit on everything;
#   4. AWS managed rule groups: IP reputation, anonymous IPs, common exploits, known bad inputs,
#      SQL injection (and Bot Control when enabled);
#   5. the managed rules that read request bodies (SQL injection, XSS, path traversal, remote
#      include, SSRF) block everywhere except on MCP endpoints (paths ending in /mcp): there the
#      body is JSON-RPC whose tool arguments are free text (a SQL query, HTML, a file path, a
#      URL are ordinary arguments), so those rules only count. The groups' header, query and
#      path rules still block on MCP endpoints, and the console and REST API keep every rule.
# Logs go to the access-log bucket with the Authorization header and cookies redacted.

locals {
  admin_rule = var.admin_host != ""
  # Managed groups; rules listed in count_rules only count (see the comments on the variables).
  managed = [
    { name = "AWSManagedRulesAmazonIpReputationList", priority = 10, count_rules = [] },
    { name = "AWSManagedRulesAnonymousIpList", priority = 11, count_rules = ["HostingProviderIPList"] },
    { name = "AWSManagedRulesCommonRuleSet", priority = 12, count_rules = concat(["SizeRestrictions_BODY"], local.body_rules.AWSManagedRulesCommonRuleSet.rules) },
    { name = "AWSManagedRulesKnownBadInputsRuleSet", priority = 13, count_rules = [] },
    { name = "AWSManagedRulesSQLiRuleSet", priority = 14, count_rules = local.body_rules.AWSManagedRulesSQLiRuleSet.rules },
  ]
  # The body rules set to count above (they still label what they match), and the label
  # namespace of their group: rule 5 blocks on these labels outside MCP endpoints.
  body_rules = {
    AWSManagedRulesCommonRuleSet = { namespace = "core-rule-set", rules = ["CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"] }
    AWSManagedRulesSQLiRuleSet   = { namespace = "sql-database", rules = ["SQLi_BODY", "SQLiExtendedPatterns_BODY"] }
  }
  body_labels = flatten([for g in values(local.body_rules) : [for r in g.rules : "awswaf:managed:aws:${g.namespace}:${replace(r, "_BODY", "_Body")}"]])
  login_paths = ["/login", "/callback", "/token", "/api/v1/tokens", "/protocol/openid-connect/token", "/protocol/openid-connect/auth", "/login-actions/"]
}

resource "aws_wafv2_ip_set" "admin" {
  count              = local.admin_rule ? 1 : 0
  name               = "${var.name_prefix}-keycloak-admin"
  description        = "Addresses allowed to reach Keycloak's admin console and API"
  scope              = var.scope
  ip_address_version = "IPV4"
  addresses          = var.admin_cidr_blocks
  tags               = var.tags
}

resource "aws_wafv2_ip_set" "login_exempt" {
  name               = "${var.name_prefix}-login-rate-exempt"
  description        = "The platform's own egress addresses, not counted by the sign-in rate limit"
  scope              = var.scope
  ip_address_version = "IPV4"
  addresses          = var.login_rate_exempt_cidr_blocks
  tags               = var.tags
}

resource "aws_wafv2_web_acl" "this" {
  name        = var.name_prefix
  description = "${var.name_prefix}: managed rules and rate limits in front of the platform"
  scope       = var.scope
  default_action {
    allow {}
  }

  dynamic "rule" {
    for_each = local.admin_rule ? [1] : []
    content {
      name     = "keycloak-admin-allow-list"
      priority = 1
      action {
        block {}
      }
      statement {
        and_statement {
          statement {
            byte_match_statement {
              search_string         = var.admin_host
              positional_constraint = "EXACTLY"
              field_to_match {
                single_header {
                  name = "host"
                }
              }
              text_transformation {
                priority = 0
                type     = "LOWERCASE"
              }
            }
          }
          statement {
            byte_match_statement {
              search_string         = "/admin"
              positional_constraint = "STARTS_WITH"
              field_to_match {
                uri_path {}
              }
              text_transformation {
                priority = 0
                type     = "URL_DECODE"
              }
            }
          }
          statement {
            not_statement {
              statement {
                ip_set_reference_statement {
                  arn = aws_wafv2_ip_set.admin[0].arn
                }
              }
            }
          }
        }
      }
      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name_prefix}-keycloak-admin"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "rate-limit-login-and-token"
    priority = 2
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit                 = var.login_rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
        scope_down_statement {
          and_statement {
            statement {
              or_statement {
                dynamic "statement" {
                  for_each = local.login_paths
                  content {
                    byte_match_statement {
                      search_string         = statement.value
                      positional_constraint = "CONTAINS"
                      field_to_match {
                        uri_path {}
                      }
                      text_transformation {
                        priority = 0
                        type     = "URL_DECODE"
                      }
                    }
                  }
                }
              }
            }
            # An empty set (no exempt addresses) matches nobody: everyone is counted.
            statement {
              not_statement {
                statement {
                  ip_set_reference_statement {
                    arn = aws_wafv2_ip_set.login_exempt.arn
                  }
                }
              }
            }
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-rate-login"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-all"
    priority = 3
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit                 = var.rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-rate-all"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = local.managed
    content {
      name     = rule.value.name
      priority = rule.value.priority
      override_action {
        none {}
      }
      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = rule.value.name
          dynamic "rule_action_override" {
            for_each = rule.value.count_rules
            content {
              name = rule_action_override.value
              action_to_use {
                count {}
              }
            }
          }
        }
      }
      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name_prefix}-${rule.value.name}"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "managed-body-rules-except-mcp"
    priority = 15
    action {
      block {}
    }
    statement {
      and_statement {
        statement {
          or_statement {
            dynamic "statement" {
              for_each = local.body_labels
              content {
                label_match_statement {
                  scope = "LABEL"
                  key   = statement.value
                }
              }
            }
          }
        }
        statement {
          not_statement {
            statement {
              byte_match_statement {
                search_string         = "/mcp"
                positional_constraint = "ENDS_WITH"
                field_to_match {
                  uri_path {}
                }
                text_transformation {
                  priority = 0
                  type     = "URL_DECODE"
                }
              }
            }
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-body-rules"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = var.enable_bot_control ? [1] : []
    content {
      name     = "AWSManagedRulesBotControlRuleSet"
      priority = 20
      override_action {
        none {}
      }
      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = "AWSManagedRulesBotControlRuleSet"
          managed_rule_group_configs {
            aws_managed_rules_bot_control_rule_set {
              inspection_level = "COMMON"
            }
          }
          # Agents are automated clients by design: only count the generic categories.
          rule_action_override {
            name = "CategoryHttpLibrary"
            action_to_use {
              count {}
            }
          }
          rule_action_override {
            name = "SignalNonBrowserUserAgent"
            action_to_use {
              count {}
            }
          }
        }
      }
      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name_prefix}-bot-control"
        sampled_requests_enabled   = true
      }
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name_prefix
    sampled_requests_enabled   = true
  }
  tags = var.tags
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [var.log_destination_arn]
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
  redacted_fields {
    single_header {
      name = "cookie"
    }
  }
}

resource "aws_wafv2_web_acl_association" "alb" {
  count        = var.scope == "REGIONAL" ? 1 : 0
  resource_arn = var.alb_arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}
