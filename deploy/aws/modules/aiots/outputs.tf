output "url" {
  description = "HTTPS base URL of the gateway (point a DNS name of the ACM certificate at alb_dns_name)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer (CNAME/alias target)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the load balancer, for a Route 53 alias record."
  value       = aws_lb.this.zone_id
}

output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecs_services" {
  description = "ECS service names (the AI-OTS services and the gateway)."
  value       = concat([for s in aws_ecs_service.service : s.name], [aws_ecs_service.gateway.name])
}

output "vpc_id" {
  description = "VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Subnets of the ECS tasks."
  value       = aws_subnet.private[*].id
}

output "database_endpoint" {
  description = "RDS endpoint (null with an external TimescaleDB)."
  value       = local.use_rds ? aws_db_instance.this[0].address : null
}

output "redis_endpoint" {
  description = "ElastiCache primary endpoint (TLS)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "secret_arns" {
  description = "Secrets Manager ARNs by variable name. Set DATABENTO_API_KEY and AIOTS_JWKS_JSON with deploy.sh put-secret."
  value       = local.secret_arns
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "log_groups" {
  description = "CloudWatch log group of each ECS task family."
  value       = { for k, g in aws_cloudwatch_log_group.task : k => g.name }
}
