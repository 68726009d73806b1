# CloudWatch log groups: one per ECS task family (the JSON logs of AIOTS_TELEMETRY__JSON_LOGS), one
# for the metrics sidecar's embedded-metric-format records. Encrypted with the module's key.

resource "aws_cloudwatch_log_group" "task" {
  for_each          = local.task_secrets
  name              = "/aiots/${local.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = merge(local.tags, { Service = each.key })
}

resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/aiots/${local.prefix}/metrics"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}
