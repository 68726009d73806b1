# CloudWatch alarms mirroring deploy/prometheus/alerts.yml: one entry per Prometheus alert, with the
# same threshold and the same duration (period x evaluation_periods = the rule's `for`, or its range
# window when it has no `for`). tests/unit/deploy/test_aws_terraform.py checks that mirror.
#
# Sources: the services' Prometheus metrics reach CloudWatch (namespace AIOTS, dimension service)
# through each task's metrics sidecar (ecs.tf, awsemf); `up` becomes ECS Container Insights'
# RunningTaskCount; RPC error rate and p99 latency are measured at the load balancer (every REST
# call passes it), where the Prometheus rules measure them per service.

locals {
  all_services = keys(local.services)

  alarm_rules = {
    AiotsServiceDown = {
      kind = "ecs_running", severity = "critical", comparison = "LessThanThreshold", threshold = 1
      period = 60, evaluation_periods = 1
      mirrors = "up{job=~\"aiots-.*\"} == 0 for 1m"
    }
    AiotsHighErrorRate = {
      kind = "alb_error_ratio", severity = "warning", comparison = "GreaterThanThreshold", threshold = 0.05
      period = 60, evaluation_periods = 5
      mirrors = "server-error RPCs / all RPCs > 0.05 for 5m (here: target 5xx / requests at the load balancer)"
    }
    AiotsSlowRpcs = {
      kind = "alb_p99", severity = "warning", comparison = "GreaterThanThreshold", threshold = 1
      period = 60, evaluation_periods = 10
      mirrors = "p99 RPC latency > 1 s for 10m (here: p99 TargetResponseTime at the load balancer)"
    }
    AiotsIngestLagHigh = {
      kind = "emf", severity = "warning", comparison = "GreaterThanThreshold", threshold = 30
      period = 60, evaluation_periods = 2, metric = "aiots_ingest_lag_seconds", stat = "Maximum"
      services = ["ingestion"]
      mirrors  = "max by (service, source) (aiots_ingest_lag_seconds) > 30 for 2m"
    }
    AiotsDbWriteFailures = {
      kind = "emf", severity = "critical", comparison = "GreaterThanThreshold", threshold = 0
      period = 300, evaluation_periods = 1, metric = "aiots_db_write_failures_total", stat = "Sum"
      services = local.all_services
      mirrors  = "sum by (service, table) (increase(aiots_db_write_failures_total[5m])) > 0"
    }
    AiotsSpillingToDisk = {
      kind = "emf", severity = "warning", comparison = "GreaterThanThreshold", threshold = 0
      period = 60, evaluation_periods = 5, metric = "aiots_ingest_spill_bytes", stat = "Maximum"
      services = ["ingestion"]
      mirrors  = "max by (service) (aiots_ingest_spill_bytes) > 0 for 5m"
    }
    AiotsQueueNearlyFull = {
      kind = "emf_ratio", severity = "warning", comparison = "GreaterThanThreshold", threshold = 0.8
      period = 60, evaluation_periods = 5, numerator = "aiots_queue_depth", denominator = "aiots_queue_capacity"
      numerator_dimensions = {}, stat = "Maximum", services = local.all_services
      mirrors = "max by (service, queue) (aiots_queue_depth / aiots_queue_capacity) > 0.8 for 5m (here: per service)"
    }
    AiotsBusBacklog = {
      kind = "emf", severity = "warning", comparison = "GreaterThanThreshold", threshold = 10000
      period = 60, evaluation_periods = 5, metric = "aiots_bus_pending", stat = "Maximum"
      services = local.all_services
      mirrors  = "sum by (service, topic, group) (aiots_bus_pending) > 10000 for 5m (here: the largest backlog per service)"
    }
    AiotsBusLagHigh = {
      kind = "emf", severity = "warning", comparison = "GreaterThanThreshold", threshold = 10
      period = 60, evaluation_periods = 5, metric = "aiots_bus_lag_seconds", stat = "Maximum"
      services = local.all_services
      mirrors  = "max by (service, topic, group) (aiots_bus_lag_seconds) > 10 for 5m"
    }
    AiotsSubscriberDrops = {
      kind = "emf", severity = "warning", comparison = "GreaterThanThreshold", threshold = 0
      period = 600, evaluation_periods = 1, metric = "aiots_subscriber_drops_total", stat = "Sum"
      services = local.all_services
      mirrors  = "sum by (service, stream) (increase(aiots_subscriber_drops_total[10m])) > 0"
    }
    AiotsCacheHitRatioLow = {
      kind = "emf_ratio", severity = "info", comparison = "LessThanThreshold", threshold = 0.5
      period = 900, evaluation_periods = 2, numerator = "aiots_cache_requests_total", denominator = "aiots_cache_requests_total"
      numerator_dimensions = { result = "hit" }, stat = "Sum", services = ["cache"]
      mirrors = "hits / requests of aiots_cache_requests_total over 15m < 0.5 for 30m"
    }
  }

  # (alert, ECS service) pairs of the per-service kinds.
  ecs_running_alarms = {
    for pair in setproduct([for k, v in local.alarm_rules : k if v.kind == "ecs_running"], concat(local.all_services, ["gateway"])) :
    "${pair[0]}-${pair[1]}" => { alert = pair[0], service = pair[1] }
  }
  emf_alarms = merge([
    for k, v in local.alarm_rules : { for s in try(v.services, []) : "${k}-${s}" => { alert = k, service = s } } if v.kind == "emf"
  ]...)
  emf_ratio_alarms = merge([
    for k, v in local.alarm_rules : { for s in try(v.services, []) : "${k}-${s}" => { alert = k, service = s } } if v.kind == "emf_ratio"
  ]...)
  alarm_actions = [aws_sns_topic.alarms.arn]
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.prefix}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "ecs_running" {
  for_each            = local.ecs_running_alarms
  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "${each.value.alert} (${local.alarm_rules[each.value.alert].severity}): no running ${each.value.service} task. Mirrors ${local.alarm_rules[each.value.alert].mirrors}."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = aws_ecs_cluster.this.name, ServiceName = each.value.service }
  statistic           = "Minimum"
  comparison_operator = local.alarm_rules[each.value.alert].comparison
  threshold           = local.alarm_rules[each.value.alert].threshold
  period              = local.alarm_rules[each.value.alert].period
  evaluation_periods  = local.alarm_rules[each.value.alert].evaluation_periods
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = merge(local.tags, { Alert = each.value.alert, Severity = local.alarm_rules[each.value.alert].severity })
}

resource "aws_cloudwatch_metric_alarm" "alb_error_ratio" {
  alarm_name          = "${local.prefix}-AiotsHighErrorRate"
  alarm_description   = "AiotsHighErrorRate (${local.alarm_rules.AiotsHighErrorRate.severity}): more than 5% of requests answered 5xx by the gateway. Mirrors ${local.alarm_rules.AiotsHighErrorRate.mirrors}."
  comparison_operator = local.alarm_rules.AiotsHighErrorRate.comparison
  threshold           = local.alarm_rules.AiotsHighErrorRate.threshold
  evaluation_periods  = local.alarm_rules.AiotsHighErrorRate.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "ratio"
    expression  = "errors / MAX([requests, 1])"
    label       = "5xx ratio"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = aws_lb_target_group.gateway.arn_suffix }
      stat        = "Sum"
      period      = local.alarm_rules.AiotsHighErrorRate.period
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = aws_lb_target_group.gateway.arn_suffix }
      stat        = "Sum"
      period      = local.alarm_rules.AiotsHighErrorRate.period
    }
  }

  tags = merge(local.tags, { Alert = "AiotsHighErrorRate", Severity = local.alarm_rules.AiotsHighErrorRate.severity })
}

resource "aws_cloudwatch_metric_alarm" "alb_p99" {
  alarm_name          = "${local.prefix}-AiotsSlowRpcs"
  alarm_description   = "AiotsSlowRpcs (${local.alarm_rules.AiotsSlowRpcs.severity}): p99 response time above 1 s. Mirrors ${local.alarm_rules.AiotsSlowRpcs.mirrors}."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = aws_lb_target_group.gateway.arn_suffix }
  extended_statistic  = "p99"
  comparison_operator = local.alarm_rules.AiotsSlowRpcs.comparison
  threshold           = local.alarm_rules.AiotsSlowRpcs.threshold
  period              = local.alarm_rules.AiotsSlowRpcs.period
  evaluation_periods  = local.alarm_rules.AiotsSlowRpcs.evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = merge(local.tags, { Alert = "AiotsSlowRpcs", Severity = local.alarm_rules.AiotsSlowRpcs.severity })
}

resource "aws_cloudwatch_metric_alarm" "emf" {
  for_each            = local.emf_alarms
  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "${each.value.alert} (${local.alarm_rules[each.value.alert].severity}) on ${each.value.service}. Mirrors ${local.alarm_rules[each.value.alert].mirrors}."
  namespace           = "AIOTS"
  metric_name         = local.alarm_rules[each.value.alert].metric
  dimensions          = { service = each.value.service }
  statistic           = local.alarm_rules[each.value.alert].stat
  comparison_operator = local.alarm_rules[each.value.alert].comparison
  threshold           = local.alarm_rules[each.value.alert].threshold
  period              = local.alarm_rules[each.value.alert].period
  evaluation_periods  = local.alarm_rules[each.value.alert].evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = merge(local.tags, { Alert = each.value.alert, Severity = local.alarm_rules[each.value.alert].severity })
}

resource "aws_cloudwatch_metric_alarm" "emf_ratio" {
  for_each            = local.emf_ratio_alarms
  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "${each.value.alert} (${local.alarm_rules[each.value.alert].severity}) on ${each.value.service}. Mirrors ${local.alarm_rules[each.value.alert].mirrors}."
  comparison_operator = local.alarm_rules[each.value.alert].comparison
  threshold           = local.alarm_rules[each.value.alert].threshold
  evaluation_periods  = local.alarm_rules[each.value.alert].evaluation_periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "ratio"
    expression  = "num / den"
    label       = each.value.alert
    return_data = true
  }

  metric_query {
    id = "num"
    metric {
      namespace   = "AIOTS"
      metric_name = local.alarm_rules[each.value.alert].numerator
      dimensions  = merge({ service = each.value.service }, local.alarm_rules[each.value.alert].numerator_dimensions)
      stat        = local.alarm_rules[each.value.alert].stat
      period      = local.alarm_rules[each.value.alert].period
    }
  }

  metric_query {
    id = "den"
    metric {
      namespace   = "AIOTS"
      metric_name = local.alarm_rules[each.value.alert].denominator
      dimensions  = { service = each.value.service }
      stat        = local.alarm_rules[each.value.alert].stat
      period      = local.alarm_rules[each.value.alert].period
    }
  }

  tags = merge(local.tags, { Alert = each.value.alert, Severity = local.alarm_rules[each.value.alert].severity })
}
