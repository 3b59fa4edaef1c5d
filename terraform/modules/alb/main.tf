# The internet-facing Application Load Balancer in front of the ECS services.
#
# Two ways in, chosen by the environment:
# - behind CloudFront (cloudfront_origin = true): only CloudFront's origin-facing addresses may
#   connect (AWS managed prefix list), and every rule also requires the secret X-Origin-Verify
#   header CloudFront adds, so nobody can bypass CloudFront (and its WAF). Each distribution
#   also names its service in X-Mcpgw-Service, which is what the rules route on.
# - directly (custom domain only): HTTPS from ingress_cidr_blocks, routed by host name.
# With a certificate the HTTPS listener serves and port 80 redirects; without one (CloudFront's
# default domain, no custom domain) CloudFront talks plain HTTP to port 80 inside AWS.

data "aws_ec2_managed_prefix_list" "cloudfront" {
  count = var.cloudfront_origin ? 1 : 0
  name  = "com.amazonaws.global.cloudfront.origin-facing"
}

locals {
  https          = var.https
  listener_ports = local.https ? [80, 443] : [80]
  # CloudFront connects over HTTPS when the ALB has a certificate (https-only origins), else HTTP.
  cloudfront_port = local.https ? 443 : 80
  main_listener   = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http_forward[0].arn
  services        = { for i, k in sort(keys(var.services)) : k => merge(var.services[k], { index = i }) }
}

resource "aws_security_group" "alb" {
  name        = "${var.name_prefix}-alb"
  description = "Who may reach the load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# ONE rule, on the port CloudFront actually uses (443 with a certificate, else 80): a rule that
# references a prefix list counts as the list's max_entries (~55 for CloudFront's) against the
# default quota of 60 rules per security group, so a second one (port 80 only to redirect,
# which CloudFront never needs) fails at apply. tests/alb.tftest.hcl checks the budget.
resource "aws_vpc_security_group_ingress_rule" "cloudfront" {
  count             = var.cloudfront_origin ? 1 : 0
  security_group_id = aws_security_group.alb.id
  description       = "Port ${local.cloudfront_port} from CloudFront's origin-facing addresses only"
  ip_protocol       = "tcp"
  from_port         = local.cloudfront_port
  to_port           = local.cloudfront_port
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront[0].id
}

# AWS counts a rule that references a prefix list as the list's max_entries rules; the default
# quota is 60 inbound rules per security group. Checked at every plan, so a change that would
# fail at apply (as two CloudFront rules did: 2 x 55) fails at plan, with the numbers.
locals {
  prefix_list_weight = var.cloudfront_origin ? data.aws_ec2_managed_prefix_list.cloudfront[0].max_entries : 0
  ingress_rule_weight = (
    length(aws_vpc_security_group_ingress_rule.cloudfront) * local.prefix_list_weight +
    length(aws_vpc_security_group_ingress_rule.direct) + length(aws_vpc_security_group_ingress_rule.nat)
  )
}

resource "terraform_data" "ingress_rule_budget" {
  input = local.ingress_rule_weight
  lifecycle {
    precondition {
      condition     = local.ingress_rule_weight <= var.security_group_rule_quota
      error_message = "The ALB security group's inbound rules weigh ${local.ingress_rule_weight} (a prefix-list rule counts as its ${local.prefix_list_weight} entries), above the quota of ${var.security_group_rule_quota} rules per security group."
    }
  }
}

resource "aws_vpc_security_group_ingress_rule" "direct" {
  for_each = var.cloudfront_origin ? {} : {
    for pair in setproduct(var.ingress_cidr_blocks, [for p in local.listener_ports : tostring(p)]) : "${pair[0]}-${pair[1]}" => { cidr = pair[0], port = tonumber(pair[1]) }
  }
  security_group_id = aws_security_group.alb.id
  description       = "Port ${each.value.port} from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

# The platform calls its own public URLs from inside (JWKS and OIDC discovery, mcpgw-setup's
# endpoint checks): the NAT addresses may always connect, whatever ingress_cidr_blocks says.
resource "aws_vpc_security_group_ingress_rule" "nat" {
  count             = var.cloudfront_origin ? 0 : length(var.nat_cidr_blocks) * length(local.listener_ports)
  security_group_id = aws_security_group.alb.id
  description       = "Port ${local.listener_ports[count.index % length(local.listener_ports)]} from the platform's own NAT gateway"
  ip_protocol       = "tcp"
  from_port         = local.listener_ports[count.index % length(local.listener_ports)]
  to_port           = local.listener_ports[count.index % length(local.listener_ports)]
  cidr_ipv4         = var.nat_cidr_blocks[floor(count.index / length(local.listener_ports))]
}

resource "aws_vpc_security_group_egress_rule" "to_vpc" {
  security_group_id = aws_security_group.alb.id
  description       = "To the tasks in the VPC"
  ip_protocol       = "tcp"
  from_port         = 1024
  to_port           = 65535
  cidr_ipv4         = var.vpc_cidr
}

#trivy:ignore:AVD-AWS-0053 An internet-facing load balancer is required: CloudFront (standard origins) and direct clients reach it over the internet.
resource "aws_lb" "this" {
  # checkov:skip=CKV2_AWS_20:Port 80 redirects to HTTPS whenever there is a certificate; only the CloudFront-default-domain mode forwards plain HTTP, from CloudFront's prefix list with the secret header.
  # checkov:skip=CKV2_AWS_28:The WAF web ACL is attached to CloudFront in the WAF environment, or to this ALB by the platform module when enable_waf is set without CloudFront.
  name                       = "${var.name_prefix}-alb"
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "strictest"
  enable_deletion_protection = var.deletion_protection
  # MCP streams (SSE, GET streams) stay open while idle; the gateway ends silent ones itself.
  idle_timeout = var.idle_timeout_seconds
  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = "alb"
    enabled = true
  }
  tags = var.tags
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no route"
      status_code  = "404"
    }
  }
  tags = var.tags
}

resource "aws_lb_listener" "http_redirect" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
  tags = var.tags
}

#trivy:ignore:AVD-AWS-0054 Only without a custom domain: CloudFront's default domain has no certificate the ALB could present, so CloudFront connects over HTTP inside AWS, from its prefix list only and with the secret origin header.
resource "aws_lb_listener" "http_forward" {
  # checkov:skip=CKV_AWS_2:Only without a custom domain (no certificate to present); reachable only from CloudFront's prefix list with the secret origin header, and viewers always use HTTPS.
  # checkov:skip=CKV_AWS_103:Same: no TLS on this listener because there is no certificate for it.
  count             = local.https ? 0 : 1
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no route"
      status_code  = "404"
    }
  }
  tags = var.tags
}

# Keycloak's admin console and admin API only from admin_cidr_blocks (direct mode; behind
# CloudFront the ALB sees CloudFront's addresses, and the WAF enforces the same list).
# One rule per allowed block keeps each rule within the ALB's five condition values.
resource "aws_lb_listener_rule" "keycloak_admin_allowed" {
  for_each     = !var.cloudfront_origin && contains(keys(var.services), "keycloak") ? { for i, c in var.admin_cidr_blocks : tostring(i) => c } : {}
  listener_arn = local.main_listener
  priority     = 1 + tonumber(each.key)
  action {
    type             = "forward"
    target_group_arn = var.services["keycloak"].target_group_arn
  }
  condition {
    host_header {
      values = var.services["keycloak"].hostnames
    }
  }
  condition {
    path_pattern {
      values = ["/admin", "/admin/*"]
    }
  }
  condition {
    source_ip {
      values = [each.value]
    }
  }
  tags = var.tags
}

resource "aws_lb_listener_rule" "keycloak_admin_denied" {
  count        = !var.cloudfront_origin && contains(keys(var.services), "keycloak") ? 1 : 0
  listener_arn = local.main_listener
  priority     = 9
  action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "forbidden"
      status_code  = "403"
    }
  }
  condition {
    host_header {
      values = var.services["keycloak"].hostnames
    }
  }
  condition {
    path_pattern {
      values = ["/admin", "/admin/*"]
    }
  }
  tags = var.tags
}

resource "aws_lb_listener_rule" "service" {
  for_each     = local.services
  listener_arn = local.main_listener
  priority     = 10 + each.value.index
  action {
    type             = "forward"
    target_group_arn = each.value.target_group_arn
  }
  dynamic "condition" {
    for_each = var.cloudfront_origin ? [] : [1]
    content {
      host_header {
        values = each.value.hostnames
      }
    }
  }
  dynamic "condition" {
    for_each = var.cloudfront_origin ? [1] : []
    content {
      http_header {
        http_header_name = "X-Mcpgw-Service"
        values           = [each.key]
      }
    }
  }
  dynamic "condition" {
    for_each = var.cloudfront_origin ? [1] : []
    content {
      http_header {
        http_header_name = "X-Origin-Verify"
        values           = [var.origin_verify_secret]
      }
    }
  }
  tags = var.tags
}
