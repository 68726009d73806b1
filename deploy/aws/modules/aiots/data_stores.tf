# RDS PostgreSQL and ElastiCache Redis, both private, encrypted at rest (KMS) and in transit (TLS).
#
# TimescaleDB: RDS for PostgreSQL does not offer the timescaledb extension, so with RDS the services
# run with AIOTS_DATABASE__TIMESCALE=off (plain PostgreSQL with daily partitions, which AI-OTS
# supports). For TimescaleDB set external_database_url_secret_arn to a Timescale Cloud (or
# self-managed EC2) DATABASE_URL: no RDS instance is created and timescale is "on".

resource "aws_db_subnet_group" "this" {
  count      = local.use_rds ? 1 : 0
  name       = local.prefix
  subnet_ids = aws_subnet.data[*].id
  tags       = local.tags
}

resource "aws_db_parameter_group" "this" {
  count  = local.use_rds ? 1 : 0
  name   = "${local.prefix}-pg16"
  family = "postgres16"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statement logging (CKV2_AWS_30): DDL, and any statement slower than 1 s.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = local.tags
}

resource "aws_db_instance" "this" {
  # checkov:skip=CKV_AWS_161:IAM database authentication needs short-lived tokens the services do not request (they read one DATABASE_URL); the password lives in Secrets Manager and TLS is forced.
  count                                 = local.use_rds ? 1 : 0
  identifier                            = local.prefix
  engine                                = "postgres"
  engine_version                        = var.db_engine_version
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage_gb
  max_allocated_storage                 = var.db_max_allocated_storage_gb
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.this.arn
  db_name                               = "aiots"
  username                              = "aiots"
  password                              = random_password.db[0].result
  port                                  = 5432
  multi_az                              = true
  db_subnet_group_name                  = aws_db_subnet_group.this[0].name
  parameter_group_name                  = aws_db_parameter_group.this[0].name
  vpc_security_group_ids                = [aws_security_group.db.id]
  publicly_accessible                   = false
  backup_retention_period               = var.db_backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = var.deletion_protection
  skip_final_snapshot                   = !var.deletion_protection
  final_snapshot_identifier             = "${local.prefix}-final"
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring[0].arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  tags                                  = local.tags
}

resource "aws_elasticache_subnet_group" "this" {
  name       = local.prefix
  subnet_ids = aws_subnet.data[*].id
  tags       = local.tags
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = local.prefix
  description                = "AI-OTS cache and event bus (Redis Streams)"
  engine                     = "redis"
  engine_version             = var.redis_engine_version
  node_type                  = var.redis_node_type
  num_cache_clusters         = local.az_count
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.this.arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis.result
  snapshot_retention_limit   = 3
  auto_minor_version_upgrade = true
  apply_immediately          = false
  tags                       = local.tags
}
