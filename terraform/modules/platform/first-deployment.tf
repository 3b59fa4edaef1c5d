# The first deployment must come up before mcpgw-setup has ever run, because setup runs only
# once the services answer (its first step checks every public URL). Two secrets that setup owns
# are read by services at start, so Terraform creates them first (issue 19, item 2):
#   - the web client's OIDC secret (read by the auth-server): a generated value; setup's
#     generated-secrets step keeps an existing value ("created where missing, never replaced")
#     and gives it to the Keycloak client it creates;
#   - the gateway's registry API key: a placeholder that is no API key; the gateway starts,
#     serves /health, and its registry polls get 401 until setup replaces the placeholder with a
#     minted key (setup replaces any value that does not authenticate).
# The gateway reads its key only at start, so scripts/run-setup-task.sh forces a new
# deployment of the gateway whenever a run changed the key. Terraform never touches either value
# again (ignore_changes).

data "aws_secretsmanager_random_password" "web_client" {
  password_length     = 48
  exclude_punctuation = true
  include_space       = false
}

resource "aws_secretsmanager_secret" "web_client" {
  # checkov:skip=CKV2_AWS_57:Keycloak holds its own copy of the client secret; rotating it means regenerating it in Keycloak and putting it here, which mcpgw-setup does (no rotation Lambda can).
  name                    = local.oidc_secret_name
  description             = "mcpgw: secret of the Keycloak client ${local.web_client_id} (read by the auth-server; kept by mcpgw-setup)"
  kms_key_id              = module.secrets.kms_key_arn
  recovery_window_in_days = var.throwaway ? 0 : 30
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "web_client" {
  secret_id     = aws_secretsmanager_secret.web_client.id
  secret_string = data.aws_secretsmanager_random_password.web_client.random_password
  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret" "gateway_key" {
  # checkov:skip=CKV2_AWS_57:The value is a registry API key that mcpgw-setup mints and replaces (revoked, expired or not a key); a rotation Lambda cannot mint registry keys.
  name                    = local.gateway_key_name
  description             = "mcpgw: the gateway's registry API key (written by mcpgw-setup)"
  kms_key_id              = module.secrets.kms_key_arn
  recovery_window_in_days = var.throwaway ? 0 : 30
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "gateway_key" {
  secret_id     = aws_secretsmanager_secret.gateway_key.id
  secret_string = "pending: run mcpgw-setup (scripts/run-setup-task.sh)"
  lifecycle {
    ignore_changes = [secret_string]
  }
}
