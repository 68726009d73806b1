output "url" {
  description = "HTTPS URL of the gateway."
  value       = module.aiots.url
}

output "alb_dns_name" {
  description = "Point your DNS name (the certificate's) here."
  value       = module.aiots.alb_dns_name
}

output "cluster_name" {
  description = "ECS cluster (deploy.sh status reads it)."
  value       = module.aiots.cluster_name
}

output "ecs_services" {
  description = "ECS services."
  value       = module.aiots.ecs_services
}

output "secret_arns" {
  description = "Secrets Manager ARNs by variable name."
  value       = module.aiots.secret_arns
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.aiots.alarm_topic_arn
}
