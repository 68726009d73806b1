# The AI-OTS services, their settings and their secrets: the single place this module names them.
# tests/unit/deploy/test_deploy_parity.py reads these locals and compares them with docker-compose.yml
# and deploy/k8s (same services, ports, health checks, variable names and secrets).

data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394:Only the first az_count zones are used (local.azs slices the list), so a zone AWS adds later never widens the deployment; var.availability_zones pins the zones by name.
  state = "available"
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  prefix   = "${var.name}-${var.environment}"
  az_count = length(local.azs)
  azs      = var.availability_zones != null ? var.availability_zones : slice(sort(data.aws_availability_zones.available.names), 0, var.az_count)

  tags = merge(var.tags, {
    Project     = "aiots"
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  # gRPC port, Prometheus port (services/common/settings.py) and the default Fargate size of each
  # service. cpu in CPU units (1024 = 1 vCPU), memory in MiB; the metrics sidecar shares the task.
  services = {
    cache     = { port = 8001, metrics_port = 9101, cpu = 512, memory = 1024, desired = 2, min = 2, max = 6, start_period = 30 }
    ingestion = { port = 8002, metrics_port = 9102, cpu = 1024, memory = 2048, desired = 1, min = 1, max = 1, start_period = 60 }
    analytics = { port = 8003, metrics_port = 9103, cpu = 1024, memory = 2048, desired = 2, min = 2, max = 10, start_period = 30 }
    signals   = { port = 8004, metrics_port = 9104, cpu = 512, memory = 1024, desired = 2, min = 2, max = 10, start_period = 30 }
    backtest  = { port = 8005, metrics_port = 9105, cpu = 1024, memory = 2048, desired = 1, min = 1, max = 4, start_period = 30 }
    portfolio = { port = 8006, metrics_port = 9106, cpu = 512, memory = 1024, desired = 2, min = 2, max = 6, start_period = 30 }
  }

  # Sizes after var.service_overrides (null fields keep the default).
  service_sizes = {
    for name, s in local.services : name => {
      cpu     = coalesce(try(var.service_overrides[name].cpu, null), s.cpu)
      memory  = coalesce(try(var.service_overrides[name].memory, null), s.memory)
      desired = coalesce(try(var.service_overrides[name].desired, null), s.desired)
      min     = coalesce(try(var.service_overrides[name].min, null), s.min)
      max     = coalesce(try(var.service_overrides[name].max, null), s.max)
    }
  }

  gateway = { port = 8000, health_path = "/health", cpu = 512, memory = 1024, desired = 2, min = 2, max = 6, start_period = 30 }

  # Container health check of every AI-OTS container (deploy/healthcheck.py: gRPC health of the
  # service named by AIOTS_SERVICE, or the gateway's /health), as in docker-compose.yml.
  healthcheck_command = ["CMD", "python", "/app/healthcheck.py"]

  use_rds   = var.external_database_url_secret_arn == null
  timescale = local.use_rds ? "off" : "on"

  # Settings every container gets (the ConfigMap aiots-config in deploy/k8s).
  common_environment = {
    AIOTS_DATABASE__TIMESCALE      = local.timescale
    AIOTS_TELEMETRY__JSON_LOGS     = "true"
    AIOTS_TELEMETRY__LOG_LEVEL     = var.log_level
    AIOTS_TELEMETRY__OTLP_ENDPOINT = var.otlp_endpoint
    AIOTS_GATEWAY__PROFILE         = "prod"
    AIOTS_GATEWAY__CONCURRENCY     = tostring(var.gateway_concurrency)
    AIOTS_GATEWAY__JWT_ISSUER      = var.jwt_issuer
    AIOTS_GATEWAY__JWT_AUDIENCE    = var.jwt_audience
  }

  # Per-service settings on top of common_environment.
  service_environment = {
    cache     = { AIOTS_SERVICE = "cache", AIOTS_CACHE__HOST = "0.0.0.0" }
    ingestion = { AIOTS_SERVICE = "ingestion", AIOTS_INGESTION__HOST = "0.0.0.0", AIOTS_INGESTION__SPILL_DIR = "/var/lib/aiots/spill" }
    analytics = { AIOTS_SERVICE = "analytics", AIOTS_ANALYTICS__HOST = "0.0.0.0" }
    signals   = { AIOTS_SERVICE = "signals", AIOTS_SIGNALS__HOST = "0.0.0.0" }
    backtest  = { AIOTS_SERVICE = "backtest", AIOTS_BACKTEST__HOST = "0.0.0.0" }
    portfolio = { AIOTS_SERVICE = "portfolio", AIOTS_PORTFOLIO__HOST = "0.0.0.0" }
  }

  # Which secrets (environment variable names) each service gets from Secrets Manager. Only
  # ingestion talks to Databento, so only it can read the key (least privilege).
  service_secrets = {
    cache     = ["DATABASE_URL", "REDIS_URL"]
    ingestion = ["DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY"]
    analytics = ["DATABASE_URL", "REDIS_URL"]
    signals   = ["DATABASE_URL", "REDIS_URL"]
    backtest  = ["DATABASE_URL", "REDIS_URL"]
    portfolio = ["DATABASE_URL", "REDIS_URL"]
  }

  # The services the gateway routes to (GatewaySettings.UPSTREAMS), reached by their Cloud Map names.
  gateway_upstreams = ["cache", "ingestion", "analytics", "signals", "portfolio", "backtest"]

  gateway_environment = {
    AIOTS_SERVICE                  = "gateway"
    AIOTS_GATEWAY__HOST            = "0.0.0.0"
    AIOTS_GATEWAY__PORT            = tostring(local.gateway.port)
    AIOTS_GATEWAY__UPSTREAM_HOSTS  = jsonencode({ for n in local.gateway_upstreams : n => "${n}.${local.discovery_domain}" })
    AIOTS_GATEWAY__JWKS_FILE       = "/etc/aiots/jwks/jwks.json"
    AIOTS_GATEWAY__CONFIG_PATH     = "/tmp/gateway/envoy.yaml"
    AIOTS_GATEWAY__ACCESS_LOG_PATH = "/dev/stdout" # JSON access log into the task's log group
  }

  # The gateway's secret: the identity provider's JWKS (public keys), written to a file by an
  # init container because Envoy's jwt_authn reads a file (the aiots-jwks Secret volume in k8s).
  gateway_secrets = ["AIOTS_JWKS_JSON"]

  discovery_domain = "${local.prefix}.internal"

  secret_arns = {
    DATABASE_URL      = local.use_rds ? aws_secretsmanager_secret.database_url[0].arn : var.external_database_url_secret_arn
    REDIS_URL         = aws_secretsmanager_secret.redis_url.arn
    DATABENTO_API_KEY = aws_secretsmanager_secret.databento_api_key.arn
    AIOTS_JWKS_JSON   = aws_secretsmanager_secret.jwks.arn
  }
}
