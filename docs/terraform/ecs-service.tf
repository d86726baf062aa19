# Not a module to apply as is: the ECS service as Terraform should own it when cloudshop-deploy deploys it: Terraform creates the service
# and the first task definition; every deploy registers a new revision and points the service at it.
# Without `ignore_changes`, the next `terraform apply` would put the service back on Terraform's revision,
# silently undoing the last deploy.

resource "aws_ecs_service" "backend" {
  name            = "stage-backend-blue"
  cluster         = "stage-cluster"
  task_definition = var.initial_task_definition_arn # the first revision only
  desired_count   = 2
  launch_type     = "FARGATE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [var.backend_security_group_id]
  }

  load_balancer {
    target_group_arn = var.backend_target_group_arn
    container_name   = "backend"
    container_port   = 8000
  }

  lifecycle {
    # The deploy action owns the running revision, and `desired_count` when `desired-count` is set in the
    # environments file (or an autoscaling policy owns it): without it here, `terraform apply` would reset
    # the count the last deploy or the autoscaler chose.
    ignore_changes = [task_definition, desired_count]
  }
}

variable "initial_task_definition_arn" {
  description = "The task definition the service starts with; deploys replace it"
  type        = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "backend_security_group_id" {
  type = string
}

variable "backend_target_group_arn" {
  type = string
}

# The task definition has a container `backend`, an execution role and a task role named `stage-backend-*`
# (the deploy policy in docs/iam passes only those roles).
