# The ECS cluster (Fargate only) and the Cloud Map namespace the services find each other in.
# Cloud Map DNS (A records of task IPs) rather than Service Connect: Service Connect resolves
# names to 127.255.x.x proxy addresses, which the registry's and gateway's egress policy rejects
# as loopback; task IPs are private addresses, allowed with egress.allow_private.

resource "aws_cloudwatch_log_group" "exec" {
  name              = "/${var.name_prefix}/ecs-exec"
  retention_in_days = 365
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name_prefix
  setting {
    name  = "containerInsights"
    value = var.container_insights
  }
  # ECS Exec sessions (when a service enables them) are encrypted with the platform key and
  # their transcripts kept in an encrypted log group.
  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]
  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.namespace
  description = "${var.name_prefix}: internal names of the platform's services"
  vpc         = var.vpc_id
  tags        = var.tags
}
