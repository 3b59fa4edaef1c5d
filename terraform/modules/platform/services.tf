# The four services and the setup task, all from the one ecs-service module. Settings are the
# services' own configuration keys as environment variables (MCPGW_<SERVICE>_<KEY PATH> with
# `__` between levels, see docs/CONFIGURATION.md). Secrets reach the containers two ways:
#   - injected at start (`secrets` -> valueFrom, read by the execution role): connection strings
#     and passwords the program reads from its environment;
#   - read by id at run time (`task_secret_arns`, read by the task role): the keys and client
#     secrets the services fetch from Secrets Manager themselves (`…secret_id` settings).

locals {
  # The RDS-managed master secret (JSON {username, password}); ECS can extract one key.
  aurora_secret_arn = local.build_platform ? module.aurora[0].master_secret_arn : ""
  alb_sg            = local.build_platform ? { alb = module.alb[0].security_group_id } : {}
  # The gateway and the auth-server also reach the registry and each other inside the VPC.
  common = {
    cluster_arn            = module.cluster.cluster_arn
    cluster_name           = module.cluster.cluster_name
    vpc_id                 = module.network.vpc_id
    subnet_ids             = module.network.private_subnet_ids
    namespace_id           = module.cluster.namespace_id
    kms_key_arn            = module.secrets.kms_key_arn
    log_retention_days     = var.log_retention_days
    enable_execute_command = var.enable_execute_command
  }
  alb_rules = local.build_platform ? module.alb[0].rule_arns : []
  # Keycloak's database and its own user (same name), created by the db-init container.
  keycloak_db      = "keycloak"
  keycloak_db_init = <<-EOT
    set -eu
    psql -v ON_ERROR_STOP=1 -v user="$KC_DB_USER" -v db="$KC_DB_NAME" -v password="$KC_DB_USER_PASSWORD" <<'SQL'
    SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')\gexec
    ALTER ROLE :"user" WITH LOGIN PASSWORD :'password';
    GRANT :"user" TO CURRENT_USER;
    SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
    ALTER DATABASE :"db" OWNER TO :"user";
    \connect :db
    SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'user') FROM pg_tables WHERE schemaname = 'public' AND tableowner <> :'user'\gexec
    SELECT format('ALTER SEQUENCE public.%I OWNER TO %I', sequencename, :'user') FROM pg_sequences WHERE schemaname = 'public' AND sequenceowner <> :'user'\gexec
    SQL
  EOT
  # Behind CloudFront a response that sends nothing for origin_read_timeout seconds is cut (a
  # 504, or a stream that just ends), while the gateway would wait 60 s for an upstream's first
  # byte and 300 s of silence within an answer. The gateway gives up first (at 90 % of
  # CloudFront's timeout), so the client gets the gateway's own 504 or error event instead.
  gateway_timeouts = var.enable_cloudfront ? {
    MCPGW_GATEWAY_UPSTREAM__FIRST_BYTE_TIMEOUT_MS = tostring(min(60000, floor(var.cloudfront_origin_read_timeout_seconds * 900)))
    MCPGW_GATEWAY_UPSTREAM__IDLE_TIMEOUT_MS       = tostring(min(300000, floor(var.cloudfront_origin_read_timeout_seconds * 900)))
  } : {}
}

module "registry" {
  count                      = local.build_platform ? 1 : 0
  source                     = "../ecs-service"
  name_prefix                = local.name_prefix
  service_name               = "registry"
  image                      = local.image["registry"]
  ecr_repository_arns        = [module.ecr.repository_arns["registry"]]
  cpu_architecture           = var.cpu_architecture
  container_port             = 7860
  health_check_path          = "/health"
  container_health_command   = ["CMD", "/usr/local/bin/registry", "healthcheck"]
  writable_paths             = [local.data_dir]
  cpu                        = var.service_sizes["registry"].cpu
  memory                     = var.service_sizes["registry"].memory
  min_capacity               = var.service_sizes["registry"].min_capacity
  max_capacity               = var.service_sizes["registry"].max_capacity
  alb_rules_ready            = local.alb_rules
  ingress_security_group_ids = merge(local.alb_sg, { gateway = module.gateway[0].security_group_id })
  environment = {
    MCPGW_REGISTRY_LISTEN                          = "0.0.0.0:7860"
    MCPGW_REGISTRY_METRICS_LISTEN                  = "0.0.0.0:9464"
    MCPGW_REGISTRY_DATA_DIR                        = local.data_dir
    MCPGW_REGISTRY_STAGE                           = var.environment == "dev" ? "non_production" : "production"
    MCPGW_REGISTRY_GATEWAY_PUBLIC_URL              = local.url["gateway"]
    MCPGW_REGISTRY_CATALOG_NAMESPACE               = var.catalog_namespace
    MCPGW_REGISTRY_STORE__MONGO_DATABASE           = "mcpgw_registry"
    MCPGW_REGISTRY_SECRETS__SEALING_KEY__SECRET_ID = module.secrets.registry_encryption_key_secret_arn
    MCPGW_REGISTRY_SECRETS__AWS__REGION            = local.region
    MCPGW_REGISTRY_EGRESS__ALLOW_PRIVATE           = "true"
    # Gateways reach the registry's own MCP server inside the VPC (Cloud Map name).
    MCPGW_REGISTRY_MCP__URL    = "${local.registry_inside}/mcp"
    MCPGW_REGISTRY_LOG__FORMAT = "json"
    # The first start's admin key goes to the task's disk, never to the logs; administrators
    # act through their IdP groups, and `registry admin-key` (ECS Exec) is the break-glass.
    MCPGW_REGISTRY_BOOTSTRAP__ADMIN_KEY_FILE = "${local.data_dir}/bootstrap-admin.key"
    # The web console signs people in at the auth-server (client mcpgw-console below) and
    # accepts its tokens; keys and revocations are fetched inside the VPC.
    MCPGW_REGISTRY_AUTH__ISSUERS = format(
      "[{issuer=\"%s\",audiences=[\"mcpgw-registry\"],jwks_uri=\"%s/.well-known/jwks.json\",revocations_url=\"%s/api/v1/revocations\"}]",
      local.url["auth-server"], local.auth_inside, local.auth_inside,
    )
    MCPGW_REGISTRY_CONSOLE__PUBLIC_URL               = local.url["registry"]
    MCPGW_REGISTRY_CONSOLE__AUTH_SERVER_URL          = local.url["auth-server"]
    MCPGW_REGISTRY_CONSOLE__AUTH_SERVER_INTERNAL_URL = local.auth_inside
  }
  secrets = {
    # store.url carries the DocumentDB password, so the whole URL is a secret.
    MCPGW_REGISTRY_STORE__URL = module.documentdb[0].registry_url_secret_arn
  }
  task_secret_arns       = [module.secrets.registry_encryption_key_secret_arn]
  cluster_arn            = local.common.cluster_arn
  cluster_name           = local.common.cluster_name
  vpc_id                 = local.common.vpc_id
  subnet_ids             = local.common.subnet_ids
  namespace_id           = local.common.namespace_id
  kms_key_arn            = local.common.kms_key_arn
  log_retention_days     = local.common.log_retention_days
  enable_execute_command = local.common.enable_execute_command
  tags                   = local.tags
}

module "auth_server" {
  count                    = local.build_platform ? 1 : 0
  source                   = "../ecs-service"
  name_prefix              = local.name_prefix
  service_name             = "auth-server"
  image                    = local.image["auth-server"]
  ecr_repository_arns      = [module.ecr.repository_arns["auth-server"]]
  cpu_architecture         = var.cpu_architecture
  container_port           = 7870
  health_check_path        = "/health"
  container_health_command = ["CMD", "/usr/local/bin/auth-server", "healthcheck"]
  writable_paths           = [local.data_dir]
  cpu                      = var.service_sizes["auth-server"].cpu
  memory                   = var.service_sizes["auth-server"].memory
  min_capacity             = var.service_sizes["auth-server"].min_capacity
  max_capacity             = var.service_sizes["auth-server"].max_capacity
  alb_rules_ready          = local.alb_rules
  # The gateway validates tokens and the registry finishes console sign-ins here.
  ingress_security_group_ids = merge(local.alb_sg, {
    gateway  = module.gateway[0].security_group_id
    registry = module.registry[0].security_group_id
  })
  environment = {
    MCPGW_AUTH_LISTEN                    = "0.0.0.0:7870"
    MCPGW_AUTH_METRICS_LISTEN            = "0.0.0.0:9465"
    MCPGW_AUTH_DATA_DIR                  = local.data_dir
    MCPGW_AUTH_PUBLIC_URL                = local.url["auth-server"]
    MCPGW_AUTH_ALLOWED_RETURN_ORIGINS    = jsonencode([local.url["registry"]])
    MCPGW_AUTH_STORE__URL                = "postgres://${module.aurora[0].master_username}@${module.aurora[0].host}:${module.aurora[0].port}/${module.aurora[0].database_name}?sslmode=require"
    MCPGW_AUTH_LOGIN__TRUSTED_PROXY_HOPS = tostring(local.proxy_hops)
    # Sign-in goes through Keycloak; the local provider (and its bootstrap password on stderr) is off.
    MCPGW_AUTH_LOCAL__ENABLED = "false"
    MCPGW_AUTH_OIDC__PROVIDERS = format(
      "[{id=\"keycloak\",name=\"Company sign-in\",issuer=\"%s\",client_id=\"%s\",client_secret={secret_id=\"%s\"}}]",
      local.keycloak_issuer, local.web_client_id, local.oidc_secret_name,
    )
    MCPGW_AUTH_VALIDATE__ISSUERS = format("[{issuer=\"%s\",audiences=[\"mcp-gateway\"]}]", local.keycloak_issuer)
    # The registry's web console is an OAuth client (authorization code + PKCE).
    MCPGW_AUTH_OAUTH__CLIENTS = format(
      "[{id=\"mcpgw-console\",redirect_uris=[\"%s/console/callback\"],audience=\"mcpgw-registry\",manage_tokens=true}]",
      local.url["registry"],
    )
    MCPGW_AUTH_RESOURCE__URL                   = local.url["gateway"]
    MCPGW_AUTH_SECRETS__SEALING_KEY__SECRET_ID = module.secrets.auth_server_encryption_key_secret_arn
    MCPGW_AUTH_SECRETS__AWS__REGION            = local.region
    MCPGW_AUTH_LOG__FORMAT                     = "json"
    # Read (and read again every 5 minutes) by the service itself, not injected at start: RDS
    # rotates the managed master password, and new connections must use the rotated one.
    MCPGW_AUTH_STORE__PASSWORD__SECRET_ID = local.aurora_secret_arn
    MCPGW_AUTH_STORE__PASSWORD__JSON_KEY  = "password"
  }
  task_secret_arns = [
    module.secrets.auth_server_encryption_key_secret_arn,
    local.aurora_secret_arn,
    local.oidc_secret_arn,
  ]
  cluster_arn            = local.common.cluster_arn
  cluster_name           = local.common.cluster_name
  vpc_id                 = local.common.vpc_id
  subnet_ids             = local.common.subnet_ids
  namespace_id           = local.common.namespace_id
  kms_key_arn            = local.common.kms_key_arn
  log_retention_days     = local.common.log_retention_days
  enable_execute_command = local.common.enable_execute_command
  tags                   = local.tags
}

module "gateway" {
  count                    = local.build_platform ? 1 : 0
  source                   = "../ecs-service"
  name_prefix              = local.name_prefix
  service_name             = "gateway"
  image                    = local.image["gateway"]
  ecr_repository_arns      = [module.ecr.repository_arns["gateway"]]
  cpu_architecture         = var.cpu_architecture
  container_port           = 8080
  health_check_path        = "/health"
  container_health_command = ["CMD", "/usr/local/bin/gateway", "healthcheck"]
  writable_paths           = [local.data_dir]
  cpu                      = var.service_sizes["gateway"].cpu
  memory                   = var.service_sizes["gateway"].memory
  min_capacity             = var.service_sizes["gateway"].min_capacity
  max_capacity             = var.service_sizes["gateway"].max_capacity
  alb_rules_ready          = local.alb_rules
  # Open MCP streams get time to finish when a task drains.
  deregistration_delay       = 120
  ingress_security_group_ids = local.alb_sg
  environment = merge(local.gateway_timeouts, {
    MCPGW_GATEWAY_LISTEN                          = "0.0.0.0:8080"
    MCPGW_GATEWAY_METRICS_LISTEN                  = "0.0.0.0:9466"
    MCPGW_GATEWAY_DATA_DIR                        = local.data_dir
    MCPGW_GATEWAY_PUBLIC_URL                      = local.url["gateway"]
    MCPGW_GATEWAY_REGISTRY__URL                   = local.registry_inside
    MCPGW_GATEWAY_REGISTRY__API_KEY__SECRET_ID    = local.gateway_key_name
    MCPGW_GATEWAY_SECRETS__SEALING_KEY__SECRET_ID = module.secrets.registry_encryption_key_secret_arn
    MCPGW_GATEWAY_SECRETS__SESSION_KEY__SECRET_ID = module.secrets.gateway_session_key_secret_arn
    MCPGW_GATEWAY_SECRETS__AWS__REGION            = local.region
    MCPGW_GATEWAY_AUTH__ISSUERS = format(
      "[{issuer=\"%s\",audiences=[\"mcp-gateway\"],revocations_url=\"%s/api/v1/revocations\"},{issuer=\"%s\",audiences=[\"mcp-gateway\"]}]",
      local.url["auth-server"], local.auth_inside, local.keycloak_issuer,
    )
    MCPGW_GATEWAY_EGRESS__ALLOW_PRIVATE = "true"
    MCPGW_GATEWAY_LOG__FORMAT           = "json"
  })
  task_secret_arns = [
    module.secrets.registry_encryption_key_secret_arn,
    module.secrets.gateway_session_key_secret_arn,
    local.gateway_key_secret_arn,
  ]
  cluster_arn            = local.common.cluster_arn
  cluster_name           = local.common.cluster_name
  vpc_id                 = local.common.vpc_id
  subnet_ids             = local.common.subnet_ids
  namespace_id           = local.common.namespace_id
  kms_key_arn            = local.common.kms_key_arn
  log_retention_days     = local.common.log_retention_days
  enable_execute_command = local.common.enable_execute_command
  tags                   = local.tags
}

module "keycloak" {
  count               = local.build_platform ? 1 : 0
  source              = "../ecs-service"
  name_prefix         = local.name_prefix
  service_name        = "keycloak"
  image               = local.image["keycloak"]
  ecr_repository_arns = [module.ecr.repository_arns["keycloak"], module.ecr.repository_arns["db-init"]]
  cpu_architecture    = var.cpu_architecture
  container_port      = 8080
  # Readiness (database reachable) is served on the management port.
  health_check_port = 9000
  health_check_path = "/health/ready"
  # The image has bash but no curl: one HTTP request over /dev/tcp.
  container_health_command   = ["CMD-SHELL", "exec 3<>/dev/tcp/127.0.0.1/9000 && printf 'GET /health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q '\"UP\"' <&3"]
  health_check_start_period  = 180
  health_check_grace_seconds = 300
  container_user             = "1000"
  # `kc.sh start` re-augments the server into /opt/keycloak when build options are given at run
  # time, so the image's file system must stay writable.
  readonly_root_filesystem   = false
  command                    = ["start"]
  cpu                        = var.service_sizes["keycloak"].cpu
  memory                     = var.service_sizes["keycloak"].memory
  min_capacity               = var.service_sizes["keycloak"].min_capacity
  max_capacity               = var.service_sizes["keycloak"].max_capacity
  alb_rules_ready            = local.alb_rules
  ingress_security_group_ids = local.alb_sg
  # JGroups (JDBC_PING discovery) between replicas shares sessions and caches.
  peer_ports = [7800, 57800]
  environment = {
    KC_DB                 = "postgres"
    KC_DB_URL             = "jdbc:postgresql://${module.aurora[0].host}:${module.aurora[0].port}/${local.keycloak_db}?sslmode=require"
    KC_DB_USERNAME        = local.keycloak_db
    KC_HOSTNAME           = local.url["keycloak"]
    KC_PROXY_HEADERS      = "xforwarded"
    KC_HTTP_ENABLED       = "true"
    KC_HEALTH_ENABLED     = "true"
    KC_METRICS_ENABLED    = "true"
    KC_CACHE              = "ispn"
    KC_CACHE_STACK        = "jdbc-ping"
    KC_LOG                = "console"
    KC_LOG_CONSOLE_OUTPUT = "json"
  }
  secrets = {
    KC_DB_PASSWORD              = module.secrets.keycloak_db_secret_arn
    KC_BOOTSTRAP_ADMIN_USERNAME = "${module.secrets.keycloak_admin_secret_arn}:username::"
    KC_BOOTSTRAP_ADMIN_PASSWORD = "${module.secrets.keycloak_admin_secret_arn}:password::"
  }
  task_secret_arns = [module.secrets.keycloak_admin_secret_arn, local.aurora_secret_arn]
  # Keycloak does not create its database or user: this runs first, as Aurora's master user
  # (injected at start, so always the current password after a rotation), and makes sure the
  # user `keycloak` exists with the password of <prefix>/platform/keycloak-db and owns the
  # database `keycloak` and its tables (a database an older version created as the master user
  # is handed over). Idempotent; psql quotes the names and the password (:"x", :'x').
  init_containers = [{
    name        = "db-init"
    image       = local.image["db-init"]
    user        = "70:70"
    entry_point = ["sh", "-c"]
    command     = [local.keycloak_db_init]
    environment = {
      PGHOST     = module.aurora[0].host
      PGPORT     = tostring(module.aurora[0].port)
      PGDATABASE = module.aurora[0].database_name
      PGSSLMODE  = "require"
      KC_DB_USER = local.keycloak_db
      KC_DB_NAME = local.keycloak_db
    }
    secrets = {
      PGUSER              = "${local.aurora_secret_arn}:username::"
      PGPASSWORD          = "${local.aurora_secret_arn}:password::"
      KC_DB_USER_PASSWORD = module.secrets.keycloak_db_secret_arn
    }
  }]
  cluster_arn            = local.common.cluster_arn
  cluster_name           = local.common.cluster_name
  vpc_id                 = local.common.vpc_id
  subnet_ids             = local.common.subnet_ids
  namespace_id           = local.common.namespace_id
  kms_key_arn            = local.common.kms_key_arn
  log_retention_days     = local.common.log_retention_days
  enable_execute_command = local.common.enable_execute_command
  tags                   = local.tags
}

# --- the post-deploy setup: a task definition only, run with setup_run_task_command ----------

data "aws_iam_policy_document" "setup" {
  statement {
    sid = "WriteGeneratedSecrets"
    actions = [
      "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret", "secretsmanager:TagResource",
    ]
    resources = [
      "${local.secret_arn_base}:${var.secret_prefix}/keycloak/*",
      "${local.secret_arn_base}:${var.secret_prefix}/registry/*",
    ]
  }
  statement {
    sid       = "EncryptGeneratedSecrets"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [module.secrets.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

module "setup" {
  count                    = local.build_platform ? 1 : 0
  source                   = "../ecs-service"
  name_prefix              = local.name_prefix
  service_name             = "setup"
  create_service           = false
  attach_to_alb            = false
  image                    = local.image["setup"]
  ecr_repository_arns      = [module.ecr.repository_arns["setup"]]
  cpu_architecture         = var.cpu_architecture
  container_port           = 8080
  container_health_command = ["CMD", "/usr/local/bin/mcpgw-setup", "--version"]
  entry_point              = ["/usr/local/bin/mcpgw-setup"]
  cpu                      = 512
  memory                   = 1024
  min_capacity             = 1
  max_capacity             = 1
  environment = {
    MCPGW_SETUP_ENVIRONMENT              = var.environment
    MCPGW_SETUP_AWS_REGION               = local.region
    MCPGW_SETUP_KEYCLOAK_URL             = local.url["keycloak"]
    MCPGW_SETUP_KEYCLOAK_ADMIN_SECRET_ID = module.secrets.keycloak_admin_secret_name
    MCPGW_SETUP_REGISTRY_URL             = local.url["registry"]
    MCPGW_SETUP_GATEWAY_URL              = local.url["gateway"]
    MCPGW_SETUP_AUTH_SERVER_URL          = local.url["auth-server"]
    MCPGW_SETUP_DOCUMENTDB_ENDPOINT      = module.documentdb[0].endpoint
    MCPGW_SETUP_DOCUMENTDB_SECRET_ID     = module.documentdb[0].master_secret_name
    MCPGW_SETUP_DOCUMENTDB_DATABASE      = "mcpgw_registry"
    MCPGW_SETUP_DOCUMENTDB_CA_FILE       = var.rds_ca_bundle_path
    MCPGW_SETUP_AURORA_ENDPOINT          = module.aurora[0].endpoint
    MCPGW_SETUP_AURORA_SECRET_ID         = local.aurora_secret_arn
    MCPGW_SETUP_AURORA_DATABASE          = module.aurora[0].database_name
    MCPGW_SETUP_SECRET_PREFIX            = var.secret_prefix
  }
  task_secret_arns = [
    module.secrets.keycloak_admin_secret_arn,
    module.documentdb[0].master_secret_arn,
    local.aurora_secret_arn,
  ]
  task_extra_policies   = { "setup-secrets" = data.aws_iam_policy_document.setup.json }
  cluster_arn           = local.common.cluster_arn
  cluster_name          = local.common.cluster_name
  vpc_id                = local.common.vpc_id
  subnet_ids            = local.common.subnet_ids
  register_in_namespace = false
  kms_key_arn           = local.common.kms_key_arn
  log_retention_days    = local.common.log_retention_days
  tags                  = local.tags
}
