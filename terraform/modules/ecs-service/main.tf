# One ECS Fargate service (or, with create_service = false, only a task definition for one-off
# tasks such as mcpgw-setup): the task definition with a non-root, read-only container, secrets
# injected from Secrets Manager, the image's own health check, a KMS-encrypted log group, two
# least-privilege roles, the ALB target group, Cloud Map registration, CPU/memory autoscaling
# and a deployment circuit breaker that rolls back.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  full_name = "${var.name_prefix}-${var.service_name}"
  # Secrets' base ARNs: a valueFrom may end in ":<json-key>::" (ECS extracts one JSON key).
  injected_secret_arns = distinct([for v in values(var.secrets) : regex("^(arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)", v)[0]])
  log_config = {
    logDriver = "awslogs"
    options = {
      awslogs-group         = aws_cloudwatch_log_group.this.name
      awslogs-region        = data.aws_region.current.name
      awslogs-stream-prefix = var.service_name
    }
  }
  # Each writable path is a task-scoped scratch volume; everything else is read-only. Fargate
  # starts such a bind mount empty and owned by root, unless the image declares the path as a
  # VOLUME: then it starts as a copy of the image's directory, owner included. The mcpgw images
  # declare /var/lib/mcpgw (owned by 65532) for exactly that: keep writable_paths on it.
  volumes = { for i, p in var.writable_paths : "scratch-${i}" => p }
  main_container = {
    name                   = var.service_name
    image                  = var.image
    essential              = true
    user                   = var.container_user
    readonlyRootFilesystem = var.readonly_root_filesystem
    entryPoint             = length(var.entry_point) > 0 ? var.entry_point : null
    command                = length(var.command) > 0 ? var.command : null
    portMappings = [for p in distinct(compact([tostring(var.container_port), var.health_check_port == null ? "" : tostring(var.health_check_port)])) : {
      containerPort = tonumber(p)
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(var.environment)) : { name = k, value = var.environment[k] }]
    secrets     = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    healthCheck = {
      command     = var.container_health_command
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = var.health_check_start_period
    }
    mountPoints      = [for name, path in local.volumes : { sourceVolume = name, containerPath = path, readOnly = false }]
    logConfiguration = local.log_config
    linuxParameters  = { initProcessEnabled = true }
    stopTimeout      = 30
    dependsOn        = [for c in var.init_containers : { containerName = c.name, condition = "SUCCESS" }]
  }
  init_containers = [for c in var.init_containers : {
    name                   = c.name
    image                  = c.image
    essential              = false
    user                   = c.user
    readonlyRootFilesystem = true
    entryPoint             = c.entry_point
    command                = c.command
    environment            = [for k in sort(keys(c.environment)) : { name = k, value = c.environment[k] }]
    secrets                = [for k in sort(keys(c.secrets)) : { name = k, valueFrom = c.secrets[k] }]
    logConfiguration       = local.log_config
  }]
  init_secret_arns      = distinct(flatten([for c in var.init_containers : [for v in values(c.secrets) : regex("^(arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)", v)[0]]]))
  execution_secret_arns = distinct(concat(local.injected_secret_arns, local.init_secret_arns))
}

# --- logs ------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/${var.name_prefix}/ecs/${var.service_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- IAM ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role is what ECS itself uses: pull the image, write logs, and read exactly the
# secrets injected into the containers' environment.
resource "aws_iam_role" "execution" {
  name               = "${local.full_name}-exec"
  description        = "ECS execution role of ${local.full_name}: image pull, logs, injected secrets"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = var.ecr_repository_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  dynamic "statement" {
    for_each = length(local.execution_secret_arns) > 0 ? [1] : []
    content {
      sid       = "InjectedSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.execution_secret_arns
    }
  }
  statement {
    sid       = "DecryptSecretsAndImages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The task role is what the application uses at run time: only the secrets it reads by id.
resource "aws_iam_role" "task" {
  name               = "${local.full_name}-task"
  description        = "Task role of ${local.full_name}: only the secrets the service reads"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  dynamic "statement" {
    for_each = length(var.task_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadOwnSecrets"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = var.task_secret_arns
    }
  }
  statement {
    sid       = "DecryptViaSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
  dynamic "statement" {
    for_each = var.enable_execute_command ? [1] : []
    content {
      sid = "EcsExec"
      actions = [
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

resource "aws_iam_role_policy" "task_extra" {
  for_each = var.task_extra_policies
  name     = each.key
  role     = aws_iam_role.task.id
  policy   = each.value
}

# --- task definition -------------------------------------------------------------------------

#trivy:ignore:AVD-AWS-0036 The flagged variables (…_SECRET_ID, …_SECRET_ID__…) hold the names of Secrets Manager secrets, not their values; values come through `secrets` (valueFrom) or are read at run time.
resource "aws_ecs_task_definition" "this" {
  family                   = local.full_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(concat(local.init_containers, [local.main_container]))
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
  dynamic "volume" {
    for_each = local.volumes
    content {
      name = volume.key
    }
  }
  tags = var.tags
}

# --- network -----------------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name        = local.full_name
  description = "Tasks of ${local.full_name}"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = {
    for pair in setproduct(keys(var.ingress_security_group_ids), distinct(compact([tostring(var.container_port), var.health_check_port == null ? "" : tostring(var.health_check_port)]))) :
    "${pair[0]}-${pair[1]}" => { source = pair[0], port = tonumber(pair[1]) }
  }
  security_group_id            = aws_security_group.this.id
  description                  = "Port ${each.value.port} from ${each.value.source}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = var.ingress_security_group_ids[each.value.source]
}

# Replicas that talk to each other (Keycloak's cache cluster over JGroups).
resource "aws_vpc_security_group_ingress_rule" "peers" {
  for_each                     = toset([for p in var.peer_ports : tostring(p)])
  security_group_id            = aws_security_group.this.id
  description                  = "Port ${each.key} between replicas of ${local.full_name}"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.key)
  to_port                      = tonumber(each.key)
  referenced_security_group_id = aws_security_group.this.id
}

#trivy:ignore:AVD-AWS-0104 The gateway and registry reach registered MCP servers on any host and port; tasks sit in private subnets behind NAT.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.this.id
  description       = "Outbound: AWS endpoints, databases, peers and registered MCP servers (any port)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_service_discovery_service" "this" {
  count = var.create_service && var.register_in_namespace ? 1 : 0
  name  = var.service_name
  dns_config {
    namespace_id   = var.namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
  tags = var.tags
}

# --- load balancing ----------------------------------------------------------------------------

resource "aws_lb_target_group" "this" {
  # checkov:skip=CKV_AWS_378:TLS ends at the ALB; the hop to the task stays inside the VPC's private subnets, restricted by security groups to the ALB.
  count                = var.create_service && var.attach_to_alb ? 1 : 0
  name                 = substr(local.full_name, 0, 32)
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay
  health_check {
    path                = var.health_check_path
    port                = var.health_check_port == null ? "traffic-port" : tostring(var.health_check_port)
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  tags = var.tags
}

# --- service ------------------------------------------------------------------------------------

# ECS refuses a target group that no listener uses yet: the service waits for the ALB's rules.
resource "terraform_data" "alb_rules_ready" {
  input = var.alb_rules_ready
}

resource "aws_ecs_service" "this" {
  count                              = var.create_service ? 1 : 0
  name                               = var.service_name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_capacity
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_execute_command             = var.enable_execute_command
  propagate_tags                     = "SERVICE"
  health_check_grace_period_seconds  = var.attach_to_alb ? var.health_check_grace_seconds : null
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }
  dynamic "load_balancer" {
    for_each = var.attach_to_alb ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.this[0].arn
      container_name   = var.service_name
      container_port   = var.container_port
    }
  }
  dynamic "service_registries" {
    for_each = var.register_in_namespace ? [1] : []
    content {
      registry_arn = aws_service_discovery_service.this[0].arn
    }
  }
  # Autoscaling owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }
  depends_on = [terraform_data.alb_rules_ready]
  tags       = var.tags
}

resource "aws_appautoscaling_target" "this" {
  count              = var.create_service ? 1 : 0
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this[0].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  count              = var.create_service ? 1 : 0
  name               = "${local.full_name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "memory" {
  count              = var.create_service ? 1 : 0
  name               = "${local.full_name}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.memory_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }
}
