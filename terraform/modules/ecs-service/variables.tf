variable "name_prefix" {
  description = "Prefix of every resource name (e.g. mcpgw-prod)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "service_name" {
  description = "Service name: the container, the Cloud Map name and part of every resource name (registry, auth-server, gateway, keycloak, setup)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.service_name))
    error_message = "service_name must be 1-20 lower-case letters, digits or '-', starting with a letter."
  }
}

variable "create_service" {
  description = "Create the ECS service (false = only the task definition and roles, for one-off tasks)."
  type        = bool
  default     = true
}

variable "cluster_arn" {
  description = "ECS cluster ARN."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name (autoscaling resource id)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
  validation {
    condition     = can(regex("^vpc-", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids must list at least one private subnet."
  }
}

variable "image" {
  description = "Container image, pinned: <ecr-repo>:<immutable tag> or @sha256:<digest>."
  type        = string
  validation {
    condition     = can(regex("^[^:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must name an immutable version (repo:tag or repo@sha256:digest), and not :latest."
  }
}

variable "ecr_repository_arns" {
  description = "ECR repositories the execution role may pull from."
  type        = list(string)
  validation {
    condition     = length(var.ecr_repository_arns) > 0
    error_message = "ecr_repository_arns must name at least the service's own repository."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "container_port" {
  description = "Port the application serves on (the ALB's traffic port)."
  type        = number
  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535
    error_message = "container_port must be between 1024 and 65535 (the container runs as non-root)."
  }
}

variable "health_check_port" {
  description = "Port of the ALB health check when it is not the traffic port (Keycloak's management port 9000); null = traffic port."
  type        = number
  default     = null
  validation {
    condition     = var.health_check_port == null ? true : (var.health_check_port >= 1024 && var.health_check_port <= 65535)
    error_message = "health_check_port must be null or between 1024 and 65535."
  }
}

variable "health_check_path" {
  description = "Path of the ALB health check."
  type        = string
  default     = "/health"
  validation {
    condition     = startswith(var.health_check_path, "/")
    error_message = "health_check_path must start with '/'."
  }
}

variable "container_health_command" {
  description = "Container health check command, e.g. [\"CMD\", \"/usr/local/bin/registry\", \"healthcheck\"]."
  type        = list(string)
  validation {
    condition     = length(var.container_health_command) >= 2 && contains(["CMD", "CMD-SHELL"], var.container_health_command[0])
    error_message = "container_health_command must start with CMD or CMD-SHELL followed by the command."
  }
}

variable "health_check_start_period" {
  description = "Seconds after start during which failed container health checks do not count."
  type        = number
  default     = 30
  validation {
    condition     = var.health_check_start_period >= 0 && var.health_check_start_period <= 300
    error_message = "health_check_start_period must be between 0 and 300 (the ECS limit)."
  }
}

variable "health_check_grace_seconds" {
  description = "Seconds the service ignores failing ALB health checks after a task starts."
  type        = number
  default     = 60
  validation {
    condition     = var.health_check_grace_seconds >= 0 && var.health_check_grace_seconds <= 2147483647
    error_message = "health_check_grace_seconds must not be negative."
  }
}

variable "command" {
  description = "Container command (empty = the image's CMD)."
  type        = list(string)
  default     = []
}

variable "container_user" {
  description = "uid:gid the container runs as (never root): 65532:65532 for the distroless images, 1000 for Keycloak."
  type        = string
  default     = "65532:65532"
  validation {
    condition     = can(regex("^[1-9][0-9]*(:[1-9][0-9]*)?$", var.container_user))
    error_message = "container_user must be a non-zero numeric uid (optionally :gid); root (0) is not allowed."
  }
}

variable "readonly_root_filesystem" {
  description = "Mount the root file system read-only (writable_paths stay writable)."
  type        = bool
  default     = true
}

variable "writable_paths" {
  description = "Paths that get a task-scoped scratch volume (e.g. the data_dir)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.writable_paths : startswith(p, "/")])
    error_message = "writable_paths must be absolute paths."
  }
}

variable "environment" {
  description = "Plain environment variables (no secrets)."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables injected from Secrets Manager: name => secret ARN (optionally ':<json-key>::'). The execution role may read exactly these."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for v in values(var.secrets) : can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:", v))])
    error_message = "secrets values must be Secrets Manager ARNs (arn:aws:secretsmanager:<region>:<account>:secret:...)."
  }
}

variable "task_secret_arns" {
  description = "Secrets the application reads by id at run time (task role); may end in -?????? for secrets created later."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for v in var.task_secret_arns : can(regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:", v))])
    error_message = "task_secret_arns must be Secrets Manager ARNs or ARN patterns."
  }
}

variable "task_extra_policies" {
  description = "Extra inline IAM policies of the task role, name => policy JSON (e.g. the setup task's secret writes)."
  type        = map(string)
  default     = {}
}

variable "init_containers" {
  description = "Containers that run to completion before the main one starts (e.g. Keycloak's database creation)."
  type = list(object({
    name        = string
    image       = string
    user        = string
    entry_point = list(string)
    command     = list(string)
    environment = map(string)
    secrets     = map(string)
  }))
  default = []
}

variable "cpu" {
  description = "Task CPU units (256, 512, 1024, 2048, 4096)."
  type        = number
  default     = 512
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Task memory in MiB (must fit the CPU size, see the Fargate table)."
  type        = number
  default     = 1024
  validation {
    condition     = var.memory >= 512 && var.memory <= 122880
    error_message = "memory must be between 512 and 122880 MiB."
  }
}

variable "min_capacity" {
  description = "Fewest tasks (also the initial count)."
  type        = number
  default     = 2
  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Most tasks autoscaling may run."
  type        = number
  default     = 6
  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100
    error_message = "max_capacity must be between 1 and 100."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilization autoscaling keeps the service at."
  type        = number
  default     = 60
  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "memory_target_percent" {
  description = "Average memory utilization autoscaling keeps the service at."
  type        = number
  default     = 75
  validation {
    condition     = var.memory_target_percent >= 10 && var.memory_target_percent <= 90
    error_message = "memory_target_percent must be between 10 and 90."
  }
}

variable "attach_to_alb" {
  description = "Create a target group and register the tasks with it."
  type        = bool
  default     = true
}

variable "alb_rules_ready" {
  description = "ARNs of the listener rules that forward to this target group; the service is created after them."
  type        = list(string)
  default     = []
}

variable "deregistration_delay" {
  description = "Seconds the ALB lets in-flight requests (and MCP streams) finish on a draining task."
  type        = number
  default     = 30
  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be between 0 and 3600."
  }
}

variable "ingress_security_group_ids" {
  description = "Security groups allowed to reach the container (and health) port, by a name used in rule descriptions."
  type        = map(string)
  default     = {}
}

variable "register_in_namespace" {
  description = "Register the tasks in the Cloud Map namespace namespace_id as <service_name>.<namespace>."
  type        = bool
  default     = true
}

variable "namespace_id" {
  description = "Cloud Map namespace of the tasks (used when register_in_namespace)."
  type        = string
  default     = ""
}

variable "enable_execute_command" {
  description = "Allow ECS Exec into the tasks (debugging; off in production)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days container logs are kept."
  type        = number
  default     = 90
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the log group, the secrets and the images."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:...)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "entry_point" {
  description = "Container entry point (empty = the image's ENTRYPOINT)."
  type        = list(string)
  default     = []
}

variable "peer_ports" {
  description = "Ports the service's own tasks may reach on each other (e.g. 7800 for Keycloak's cache cluster)."
  type        = list(number)
  default     = []
  validation {
    condition     = alltrue([for p in var.peer_ports : p >= 1024 && p <= 65535])
    error_message = "peer_ports must be between 1024 and 65535."
  }
}
