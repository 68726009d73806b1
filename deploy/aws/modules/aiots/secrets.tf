# Secrets Manager. DATABASE_URL and REDIS_URL are composed here from generated passwords (they are
# therefore in the Terraform state: keep the state in an encrypted, access-controlled backend, see
# examples/production/versions.tf). The Databento key and the JWKS are created empty: their values
# never pass through Terraform (deploy.sh put-secret sets them): the state holds only the JWKS's
# first value (public keys, default: none) and never the Databento key.

resource "random_password" "db" {
  count   = local.use_rds ? 1 : 0
  length  = 40
  special = false
}

resource "random_password" "redis" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "database_url" {
  # checkov:skip=CKV2_AWS_57:Rotation would change the RDS password behind the composed URL without restarting the tasks; rotate with a new apply (random_password keepers) and a service redeploy instead.
  count                   = local.use_rds ? 1 : 0
  name                    = "${local.prefix}/DATABASE_URL"
  description             = "AI-OTS DATABASE_URL (RDS PostgreSQL, TLS required)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "database_url" {
  count         = local.use_rds ? 1 : 0
  secret_id     = aws_secretsmanager_secret.database_url[0].id
  secret_string = "postgresql://aiots:${random_password.db[0].result}@${aws_db_instance.this[0].address}:${aws_db_instance.this[0].port}/aiots?sslmode=require"
}

resource "aws_secretsmanager_secret" "redis_url" {
  # checkov:skip=CKV2_AWS_57:The Redis AUTH token is part of the URL; rotate it with an apply (ElastiCache auth_token_update_strategy ROTATE) and a service redeploy, not a Lambda.
  name                    = "${local.prefix}/REDIS_URL"
  description             = "AI-OTS REDIS_URL (ElastiCache, TLS, AUTH token)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.redis.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:6379/0"
}

resource "aws_secretsmanager_secret" "databento_api_key" {
  # checkov:skip=CKV2_AWS_57:A Databento API key is issued in Databento's portal; AWS cannot rotate it. Replace it with deploy.sh put-secret.
  name                    = "${local.prefix}/DATABENTO_API_KEY"
  description             = "Databento API key (db-...), read by ingestion only. Value set outside Terraform."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret" "jwks" {
  # checkov:skip=CKV2_AWS_57:The JWKS holds the identity provider's public keys; it changes when the provider rotates its keys, so it is replaced with deploy.sh put-secret, not rotated by AWS.
  name                    = "${local.prefix}/JWKS"
  description             = "JWKS (public keys) of the token issuer, read by the gateway. Value set outside Terraform."
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

# A first JWKS so that the gateway task can start (ECS needs a secret value); put-secret replaces it.
resource "aws_secretsmanager_secret_version" "jwks_initial" {
  secret_id     = aws_secretsmanager_secret.jwks.id
  secret_string = var.initial_jwks_json

  lifecycle {
    ignore_changes = [secret_string]
  }
}
