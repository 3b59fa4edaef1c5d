# Plans and applies this environment against a mocked AWS provider (no credentials, no network):
# catches wiring errors (cycles, wrong types, failing validations and preconditions) that
# `terraform validate` cannot see. Run by scripts/check-terraform.sh.

mock_provider "aws" {
  source = "../tests"
}

mock_provider "aws" {
  alias  = "us_east_1"
  source = "../tests"
}

# The mock data is shared by both providers; CloudFront's certificate must carry us-east-1.
override_resource {
  target = module.platform.module.dns[0].aws_acm_certificate.cloudfront[0]
  values = {
    arn = "arn:aws:acm:us-east-1:111122223333:certificate/11111111-1111-1111-1111-111111111111"
  }
}

variables {
  aws_region = "eu-west-1"
  image_tags = {
    registry      = "v1.0.0-build-20261121"
    "auth-server" = "v1.0.0-build-20261121"
    gateway       = "v1.0.0-build-20261121"
    setup         = "v1.0.0-build-20261121"
    keycloak      = "26.7.3"
    "db-init"     = "16.10-alpine"
  }
  keycloak_admin_cidr_blocks = ["203.0.113.0/24"]
  alarm_email                = "oncall@example.com"
  runbook_base_url           = "https://github.com/example/mcpgw/blob/main/docs/runbook.md"
  domain_name                = "example.com"
  route53_zone_id            = "Z0123456789ABCDEFGHIJ"
}

run "plan" {
  command = plan
}

run "apply" {
  command = apply

  assert {
    condition     = output.documentdb_database == "mcpgw_registry" && output.aurora_database == "mcpgw_auth" && output.secret_prefix == "mcpgw"
    error_message = "the database and prefix outputs mcpgw-setup reads have changed"
  }
  assert {
    condition     = startswith(output.gateway_url, "https://") && startswith(output.keycloak_url, "https://")
    error_message = "public URLs must be https"
  }
  assert {
    condition     = can(regex("^aws ecs run-task ", output.setup_run_task_command))
    error_message = "setup_run_task_command must be an aws ecs run-task command"
  }
  # What make build-push, the pipeline and scripts/run-setup-task.sh read (issue 19, items 6, 3).
  assert {
    condition     = output.ecr_repository_prefix == "mcpgw-prod" && output.ecr_registry == "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
    error_message = "images are pushed to <account>.dkr.ecr.<region>.amazonaws.com/<project>-<environment>/<image>, the repositories Terraform creates"
  }
  assert {
    condition     = contains(keys(output.ecs_service_names), "gateway") && contains(keys(output.log_group_names), "setup")
    error_message = "scripts/run-setup-task.sh needs the gateway's service name and the setup task's log group"
  }
}

# The pipeline's staging environment: the same mode, prod-like (deploy/staging.tfvars).
run "staging" {
  command = plan
  variables {
    environment   = "staging"
    secret_prefix = "mcpgw-staging"
  }
  assert {
    condition     = output.environment == "staging" && output.secret_prefix == "mcpgw-staging" && output.ecr_repository_prefix == "mcpgw-staging"
    error_message = "staging is an environment of its own: its own names and secrets"
  }
}
