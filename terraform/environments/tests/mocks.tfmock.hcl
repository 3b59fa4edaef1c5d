# Shared mock data for the environments' plan tests (see ../README.md): fixed, valid-looking
# values where the configuration parses or validates what AWS would return.
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
  defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
}
mock_data "aws_availability_zones" {
  defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
}
mock_data "aws_elb_service_account" {
  defaults = { arn = "arn:aws:iam::156460612806:root" }
}
mock_data "aws_secretsmanager_random_password" {
  defaults = { random_password = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefGHIJKLMN" }
}
# CloudFront's origin-facing list: max_entries is what a rule referencing it weighs.
mock_data "aws_ec2_managed_prefix_list" {
  defaults = { id = "pl-3b927c52", max_entries = 55 }
}
mock_resource "aws_kms_key" {
  defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000" }
}
mock_resource "aws_secretsmanager_secret" {
  defaults = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:mcpgw/platform/mock-AbCdEf" }
}
mock_resource "aws_secretsmanager_secret_version" {
  defaults = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:mcpgw/platform/mock-AbCdEf" }
}
mock_resource "aws_ecr_repository" {
  defaults = {
    arn            = "arn:aws:ecr:eu-west-1:111122223333:repository/mcpgw-prod/mock"
    repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/mcpgw-prod/mock"
  }
}
mock_resource "aws_eip" {
  defaults = { public_ip = "198.51.100.7" }
}
mock_resource "aws_lb" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/mcpgw-prod-alb/0123456789abcdef"
    arn_suffix = "app/mcpgw-prod-alb/0123456789abcdef"
    dns_name   = "mcpgw-prod-alb-123.eu-west-1.elb.amazonaws.com"
    zone_id    = "Z32O12XQLNTSW2"
  }
}
mock_resource "aws_lb_target_group" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/mcpgw-prod-mock/0123456789abcdef"
    arn_suffix = "targetgroup/mcpgw-prod-mock/0123456789abcdef"
  }
}
mock_resource "aws_rds_cluster" {
  defaults = {
    endpoint           = "mcpgw-prod-aurora.cluster-abc.eu-west-1.rds.amazonaws.com"
    port               = 5432
    master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-0000-AbCdEf", kms_key_id = "k", secret_status = "active" }]
  }
}
mock_resource "aws_docdb_cluster" {
  defaults = {
    endpoint = "mcpgw-prod-docdb.cluster-abc.eu-west-1.docdb.amazonaws.com"
    port     = 27017
  }
}
mock_resource "aws_acm_certificate_validation" {
  defaults = { certificate_arn = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000" }
}
mock_resource "aws_wafv2_web_acl" {
  defaults = { arn = "arn:aws:wafv2:us-east-1:111122223333:global/webacl/mcpgw-prod/00000000-0000-0000-0000-000000000000" }
}
mock_resource "aws_cloudfront_distribution" {
  defaults = {
    domain_name    = "d111111abcdef8.cloudfront.net"
    hosted_zone_id = "Z2FDTNDATAQYW2"
  }
}
mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:eu-west-1:111122223333:mcpgw-prod-alarms" }
}
mock_resource "aws_cloudwatch_metric_alarm" {
  defaults = { arn = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:mock" }
}
mock_resource "aws_ecs_task_definition" {
  defaults = { arn = "arn:aws:ecs:eu-west-1:111122223333:task-definition/mock:1" }
}
mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::111122223333:role/mock" }
}
mock_resource "aws_s3_bucket" {
  defaults = { arn = "arn:aws:s3:::aws-waf-logs-mcpgw-prod-111122223333-eu-west-1" }
}
mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/mock" }
}
mock_resource "aws_vpc" {
  defaults = { id = "vpc-0123456789abcdef0", cidr_block = "10.40.0.0/16" }
}
mock_resource "aws_lb_listener" {
  defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/mcpgw-prod-alb/0123456789abcdef/0123456789abcdef" }
}
mock_resource "aws_lb_listener_rule" {
  defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener-rule/app/mcpgw-prod-alb/0123456789abcdef/0123456789abcdef/0123456789abcdef" }
}
mock_resource "aws_ecs_cluster" {
  defaults = { arn = "arn:aws:ecs:eu-west-1:111122223333:cluster/mcpgw-prod" }
}
mock_resource "aws_service_discovery_service" {
  defaults = { arn = "arn:aws:servicediscovery:eu-west-1:111122223333:service/srv-0123456789abcdef" }
}
mock_resource "aws_wafv2_ip_set" {
  defaults = { arn = "arn:aws:wafv2:us-east-1:111122223333:global/ipset/mock/00000000-0000-0000-0000-000000000000" }
}
mock_resource "aws_acm_certificate" {
  defaults = {
    arn = "arn:aws:acm:eu-west-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
    domain_validation_options = [
      for h in ["registry", "auth", "mcp", "kc"] : {
        domain_name           = "${h}.example.com"
        resource_record_name  = "_x.${h}.example.com."
        resource_record_type  = "CNAME"
        resource_record_value = "_y.acm-validations.aws."
      }
    ]
  }
}
