# ECS Fargate: one service per AI-OTS service plus the gateway, each with its container health
# check, CPU target-tracking autoscaling and its CloudWatch log group. Services register in Cloud
# Map (A records, multivalue): the gateway's Envoy resolves every healthy task, as with the
# headless Services in deploy/k8s.

resource "aws_ecs_cluster" "this" {
  name = local.prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = local.discovery_domain
  description = "AI-OTS service names the gateway resolves"
  vpc         = aws_vpc.this.id
  tags        = local.tags
}

resource "aws_service_discovery_service" "this" {
  for_each = local.services
  name     = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.tags
}

locals {
  # Volumes are prepared by a short-lived "init" container (same image, root, not essential): /tmp
  # becomes world-writable with the sticky bit, ingestion's spill directory belongs to the aiots user
  # (uid 10001), and the gateway's JWKS secret is written to a read-only file.
  init_script = join("; ", [
    "import os, pathlib",
    "os.chmod('/tmp', 0o1777)",
    "spill = pathlib.Path('/var/lib/aiots/spill')",
    "spill.is_dir() and os.chown(spill, 10001, 10001)",
    "jwks = os.environ.get('AIOTS_JWKS_JSON')",
    "jwks and pathlib.Path('/etc/aiots/jwks/jwks.json').write_text(jwks)",
  ])

  # awsemf: the Prometheus metrics the CloudWatch alarms (alarms.tf) use, with the labels they need.
  emf_declarations = [
    {
      dimensions = [["service"]]
      metric_name_selectors = [
        "^aiots_ingest_lag_seconds$", "^aiots_ingest_spill_bytes$", "^aiots_db_write_failures_total$",
        "^aiots_queue_depth$", "^aiots_queue_capacity$", "^aiots_bus_pending$", "^aiots_bus_lag_seconds$",
        "^aiots_subscriber_drops_total$", "^aiots_cache_requests_total$",
      ]
    },
    {
      dimensions            = [["service", "result"]]
      metric_name_selectors = ["^aiots_cache_requests_total$"]
    },
  ]

  metrics_collector_config = {
    for name, s in local.services : name => yamlencode({
      receivers = {
        prometheus = {
          config = {
            global = { scrape_interval = "15s" }
            scrape_configs = [{
              job_name       = "aiots-${name}"
              static_configs = [{ targets = ["127.0.0.1:${s.metrics_port}"] }]
            }]
          }
        }
      }
      exporters = {
        awsemf = {
          namespace               = "AIOTS"
          log_group_name          = aws_cloudwatch_log_group.metrics.name
          region                  = data.aws_region.current.name
          dimension_rollup_option = "NoDimensionRollup"
          metric_declarations     = local.emf_declarations
        }
      }
      service = { pipelines = { metrics = { receivers = ["prometheus"], exporters = ["awsemf"] } } }
    })
  }

  log_options = {
    for name in keys(local.task_secrets) : name => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.task[name].name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = name
      }
    }
  }

  read_only_user = {
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    linuxParameters        = { capabilities = { drop = ["ALL"] }, initProcessEnabled = true }
  }

  init_container = {
    for name in keys(local.task_secrets) : name => {
      name                   = "init"
      image                  = var.image
      essential              = false
      user                   = "0"
      readonlyRootFilesystem = true
      entryPoint             = ["python", "-c"]
      command                = [local.init_script]
      logConfiguration       = local.log_options[name]
      mountPoints = concat(
        [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
        name == "ingestion" ? [{ sourceVolume = "spill", containerPath = "/var/lib/aiots/spill", readOnly = false }] : [],
        name == "gateway" ? [{ sourceVolume = "jwks", containerPath = "/etc/aiots/jwks", readOnly = false }] : [],
      )
      secrets = name == "gateway" ? [for s in local.gateway_secrets : { name = s, valueFrom = local.secret_arns[s] }] : []
    }
  }
}

resource "aws_ecs_task_definition" "service" {
  for_each                 = local.services
  family                   = "${local.prefix}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.service_sizes[each.key].cpu
  memory                   = local.service_sizes[each.key].memory
  execution_role_arn       = aws_iam_role.execution[each.key].arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  dynamic "volume" {
    for_each = each.key == "ingestion" ? ["spill"] : []
    content {
      name = volume.value
    }
  }

  container_definitions = jsonencode([
    local.init_container[each.key],
    merge(local.read_only_user, {
      name      = each.key
      image     = var.image
      essential = true
      command   = ["serve", each.key]
      portMappings = [
        { name = "grpc", containerPort = each.value.port, protocol = "tcp" },
        { name = "metrics", containerPort = each.value.metrics_port, protocol = "tcp" },
      ]
      environment = [for k, v in merge(local.common_environment, local.service_environment[each.key]) : { name = k, value = v }]
      secrets     = [for s in local.service_secrets[each.key] : { name = s, valueFrom = local.secret_arns[s] } if s != "DATABENTO_API_KEY" || var.databento_enabled]
      healthCheck = {
        command     = local.healthcheck_command
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = each.value.start_period
      }
      dependsOn        = [{ containerName = "init", condition = "SUCCESS" }]
      logConfiguration = local.log_options[each.key]
      stopTimeout      = 15
      mountPoints = concat(
        [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
        each.key == "ingestion" ? [{ sourceVolume = "spill", containerPath = "/var/lib/aiots/spill", readOnly = false }] : [],
      )
    }),
    merge(local.read_only_user, {
      name              = "metrics"
      image             = var.metrics_collector_image
      essential         = false
      memoryReservation = 128
      environment       = [{ name = "AOT_CONFIG_CONTENT", value = local.metrics_collector_config[each.key] }]
      logConfiguration  = local.log_options[each.key]
    }),
  ])

  tags = merge(local.tags, { Service = each.key })
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${local.prefix}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.gateway.cpu
  memory                   = local.gateway.memory
  execution_role_arn       = aws_iam_role.execution["gateway"].arn
  task_role_arn            = aws_iam_role.task["gateway"].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  volume {
    name = "jwks"
  }

  container_definitions = jsonencode([
    local.init_container["gateway"],
    merge(local.read_only_user, {
      name         = "gateway"
      image        = var.image
      essential    = true
      command      = ["gateway"]
      portMappings = [{ name = "http", containerPort = local.gateway.port, protocol = "tcp" }]
      environment  = [for k, v in merge(local.common_environment, local.gateway_environment) : { name = k, value = v }]
      healthCheck = {
        command     = local.healthcheck_command
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = local.gateway.start_period
      }
      dependsOn        = [{ containerName = "init", condition = "SUCCESS" }]
      logConfiguration = local.log_options["gateway"]
      stopTimeout      = 15
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
        { sourceVolume = "jwks", containerPath = "/etc/aiots/jwks", readOnly = true },
      ]
    }),
  ])

  tags = merge(local.tags, { Service = "gateway" })
}

resource "aws_ecs_service" "service" {
  for_each               = local.services
  name                   = each.key
  cluster                = aws_ecs_cluster.this.id
  task_definition        = aws_ecs_task_definition.service[each.key].arn
  desired_count          = local.service_sizes[each.key].desired
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  # ingestion is the single writer of the market-data feed: replace, never run two at once.
  deployment_minimum_healthy_percent = each.key == "ingestion" ? 0 : 100
  deployment_maximum_percent         = each.key == "ingestion" ? 100 : 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = each.key == "ingestion" ? [aws_security_group.services.id, aws_security_group.databento_live.id] : [aws_security_group.services.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.this[each.key].arn
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by autoscaling after the first apply
  }

  tags = merge(local.tags, { Service = each.key })
}

resource "aws_ecs_service" "gateway" {
  name                              = "gateway"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.gateway.arn
  desired_count                     = local.gateway.desired
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false
  health_check_grace_period_seconds = 60

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = local.gateway.port
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https]
  tags       = merge(local.tags, { Service = "gateway" })
}

# CPU target tracking for every ECS service (min = max = 1 keeps ingestion a single writer).
locals {
  scaling = merge(local.service_sizes, { gateway = local.gateway })
}

resource "aws_appautoscaling_target" "this" {
  for_each           = local.scaling
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${each.key}"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
  depends_on         = [aws_ecs_service.service, aws_ecs_service.gateway]
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each           = local.scaling
  name               = "${local.prefix}-${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
