output "service_name" {
  description = "Name of the ECS service (empty without one)."
  value       = var.create_service ? aws_ecs_service.this[0].name : ""
}

output "task_definition_arn" {
  description = "ARN of the task definition (with revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_family" {
  description = "Family of the task definition (run-task uses the latest revision)."
  value       = aws_ecs_task_definition.this.family
}

output "task_role_arn" {
  description = "Task role ARN."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Execution role ARN."
  value       = aws_iam_role.execution.arn
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.this.id
}

output "target_group_arn" {
  description = "ALB target group ARN (empty when not behind the ALB)."
  value       = var.create_service && var.attach_to_alb ? aws_lb_target_group.this[0].arn : ""
}

output "target_group_arn_suffix" {
  description = "Target group ARN suffix for CloudWatch metrics (empty when not behind the ALB)."
  value       = var.create_service && var.attach_to_alb ? aws_lb_target_group.this[0].arn_suffix : ""
}

output "log_group_name" {
  description = "CloudWatch log group of the containers."
  value       = aws_cloudwatch_log_group.this.name
}

output "container_name" {
  description = "Name of the main container (for run-task overrides)."
  value       = var.service_name
}
