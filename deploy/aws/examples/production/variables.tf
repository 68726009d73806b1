variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "image" {
  description = "AI-OTS image in ECR with a pinned tag (deploy.sh push builds and pushes it)."
  type        = string
}

variable "acm_certificate_arn" {
  description = "ACM certificate for the HTTPS listener."
  type        = string
}

variable "jwt_issuer" {
  description = "Issuer (iss) of the identity provider whose JWKS is stored in the JWKS secret."
  type        = string
}

variable "alarm_email" {
  description = "E-mail that receives the alarms (optional)."
  type        = string
  default     = null
}

variable "databento_enabled" {
  description = "Live Databento feed (after deploy.sh put-secret DATABENTO_API_KEY); false: simulator."
  type        = bool
  default     = false
}

variable "external_database_url_secret_arn" {
  description = "Secret with a Timescale Cloud DATABASE_URL; null creates RDS PostgreSQL (no TimescaleDB)."
  type        = string
  default     = null
}
