# Inputs of the AI-OTS AWS module. Defaults are the sizes docs/deploy.md prices.

variable "name" {
  description = "Prefix of every resource name (letters, digits, hyphens)."
  type        = string
  default     = "aiots"

  # name and environment are short enough for AWS's name limits (load balancer and target group: 32).
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name))
    error_message = "name: 2-12 characters, lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name, part of resource names and tags (e.g. production, staging)."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment: 2-16 characters, lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------ network

variable "vpc_cidr" {
  description = "CIDR of the VPC; split into public, private (tasks) and data (RDS, Redis) subnets per AZ."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones used (2 or 3). RDS Multi-AZ and Redis failover need at least 2."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "availability_zones" {
  description = "Zone names to use (overrides az_count); null: the first az_count available zones in name order."
  type        = list(string)
  default     = null

  validation {
    condition     = var.availability_zones == null || try(length(var.availability_zones) >= 2, false)
    error_message = "availability_zones: give at least 2 zone names (or null)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper, not AZ-redundant) instead of one per AZ."
  type        = bool
  default     = false
}

variable "alb_ingress_cidrs" {
  description = "Client CIDRs allowed to reach the load balancer on 443 (and 80, which redirects)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ------------------------------------------------------------------------------ containers

variable "image" {
  description = "The AI-OTS image (deploy/Dockerfile) with an immutable tag, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/aiots:0.1.0."
  type        = string

  validation {
    condition     = can(regex("^[^:]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image: give a pinned tag or digest (not :latest)."
  }
}

variable "metrics_collector_image" {
  description = "AWS Distro for OpenTelemetry collector: scrapes each task's Prometheus port into CloudWatch (EMF)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "service_overrides" {
  description = "Per-service sizing overrides merged over the defaults in locals.tf (cpu units, memory MiB, desired/min/max tasks)."
  type = map(object({
    cpu     = optional(number)
    memory  = optional(number)
    desired = optional(number)
    min     = optional(number)
    max     = optional(number)
  }))
  default = {}
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the autoscaling of every ECS service tracks."
  type        = number
  default     = 70
}

variable "gateway_concurrency" {
  description = "AIOTS_GATEWAY__CONCURRENCY: Envoy worker threads per gateway task (match the task's vCPUs)."
  type        = number
  default     = 1
}

variable "log_level" {
  description = "AIOTS_TELEMETRY__LOG_LEVEL of every container."
  type        = string
  default     = "INFO"
}

variable "otlp_endpoint" {
  description = "AIOTS_TELEMETRY__OTLP_ENDPOINT (OTLP gRPC traces/metrics); empty: no export."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of every log group."
  type        = number
  default     = 365
}

# ------------------------------------------------------------------------------ gateway / TLS

variable "acm_certificate_arn" {
  description = "ACM certificate (same region) for the HTTPS listener of the load balancer."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be an ACM certificate ARN."
  }
}

variable "jwt_issuer" {
  description = "AIOTS_GATEWAY__JWT_ISSUER: the iss claim of the identity provider's tokens."
  type        = string
}

variable "jwt_audience" {
  description = "AIOTS_GATEWAY__JWT_AUDIENCE: the aud claim the gateway requires."
  type        = string
  default     = "aiots"
}

variable "waf_web_acl_arn" {
  description = "Optional WAFv2 web ACL (REGIONAL) associated with the load balancer."
  type        = string
  default     = null
}

variable "alb_access_logs_bucket" {
  description = "Optional S3 bucket (with the ELB log-delivery policy) for load balancer access logs."
  type        = string
  default     = null
}

# ------------------------------------------------------------------------------ secrets

variable "databento_enabled" {
  description = "Inject DATABENTO_API_KEY into ingestion (live Databento feed). Set true after `deploy.sh put-secret DATABENTO_API_KEY`; false: the simulator feeds the system."
  type        = bool
  default     = false
}

variable "initial_jwks_json" {
  description = "First value of the JWKS secret (public keys, not sensitive). Later values come from `deploy.sh put-secret AIOTS_JWKS_JSON` and are kept. The default has no key: every token is refused until the identity provider's JWKS is stored."
  type        = string
  default     = "{\"keys\": []}"

  validation {
    condition     = can(jsondecode(var.initial_jwks_json).keys)
    error_message = "initial_jwks_json must be a JWKS document: {\"keys\": [...]}."
  }
}

# ------------------------------------------------------------------------------ data stores

variable "external_database_url_secret_arn" {
  description = <<-EOT
    Secrets Manager secret holding DATABASE_URL of an external TimescaleDB (Timescale Cloud or
    self-managed on EC2). When set, no RDS instance is created and timescale defaults to "on".
    RDS for PostgreSQL does not offer the timescaledb extension (see docs/deploy.md).
  EOT
  type        = string
  default     = null
}

variable "db_instance_class" {
  description = "RDS instance class (PostgreSQL)."
  type        = string
  default     = "db.m6g.large"
}

variable "db_engine_version" {
  description = "RDS PostgreSQL major.minor version."
  type        = string
  default     = "16.4"
}

variable "db_allocated_storage_gb" {
  description = "Initial gp3 storage, GiB (grows to db_max_allocated_storage_gb)."
  type        = number
  default     = 100
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling, GiB."
  type        = number
  default     = 500
}

variable "db_backup_retention_days" {
  description = "Automated backup retention, days."
  type        = number
  default     = 14
}

variable "redis_node_type" {
  description = "ElastiCache node type (Redis OSS 7)."
  type        = string
  default     = "cache.t4g.medium"
}

variable "redis_engine_version" {
  description = "ElastiCache Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "deletion_protection" {
  description = "Deletion protection on RDS and the load balancer; final snapshot on destroy."
  type        = bool
  default     = true
}

# ------------------------------------------------------------------------------ alarms

variable "alarm_email" {
  description = "Optional e-mail subscribed to the alarm topic (confirm the subscription mail)."
  type        = string
  default     = null
}
