# The prod environment of the release pipeline (.github/workflows/deploy.yml, docs/deployment.md
# "CI/CD"): the production mode, one state per environment. No secrets here: every password and
# key is generated into Secrets Manager. The image tags come from the release
# (release.auto.tfvars.json, written by the pipeline). Replace the example values.

aws_region  = "eu-west-1"
environment = "prod"
# One AWS account per environment is best; in a shared account each needs its own prefix.
secret_prefix = "mcpgw"

domain_name     = "example.com"
route53_zone_id = "Z0123456789ABCDEFGHIJ"

keycloak_admin_cidr_blocks = ["203.0.113.10/32"]
alarm_email                = "platform-oncall@example.com"
runbook_base_url           = "https://github.com/example/mcpgw/blob/main/docs/runbook.md"

deletion_protection = true
single_nat_gateway  = false

tags = {
  Owner       = "platform-team"
  CostCenter  = "ai-platform"
  Environment = "prod"
}
