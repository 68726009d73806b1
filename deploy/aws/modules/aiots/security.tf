# Who may talk to whom. Clients -> load balancer (443) -> gateway (8000) -> services (their gRPC
# ports) -> RDS (5432) and Redis (6379). Nothing else reaches a service, RDS or Redis; the data
# stores have no public address and sit in subnets without a route out of the VPC.

resource "aws_security_group" "alb" {
  name        = "${local.prefix}-alb"
  description = "AI-OTS load balancer: HTTPS from clients, to the gateway only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_http_redirect" {
  # checkov:skip=CKV_AWS_260:Port 80 only answers a 301 to HTTPS (aws_lb_listener.http_redirect); it forwards nothing to the gateway.
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, answered with a redirect to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to the gateway listener"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway.port
  to_port                      = local.gateway.port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_security_group" "gateway" {
  name        = "${local.prefix}-gateway"
  description = "AI-OTS gateway tasks: from the load balancer, to the services"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-gateway" })
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway.port
  to_port                      = local.gateway.port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_services" {
  for_each                     = local.services
  security_group_id            = aws_security_group.gateway.id
  description                  = "to ${each.key} gRPC"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.services.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_https" {
  security_group_id = aws_security_group.gateway.id
  description       = "HTTPS through NAT: image pulls (ECR), Secrets Manager, CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "services" {
  name        = "${local.prefix}-services"
  description = "AI-OTS service tasks: gRPC from the gateway only; to RDS and Redis"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-services" })
}

resource "aws_vpc_security_group_ingress_rule" "services_from_gateway" {
  for_each                     = local.services
  security_group_id            = aws_security_group.services.id
  description                  = "${each.key} gRPC from the gateway"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_vpc_security_group_egress_rule" "services_to_db" {
  security_group_id            = aws_security_group.services.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.db.id
}

resource "aws_vpc_security_group_egress_rule" "services_to_external_db" {
  count             = local.use_rds ? 0 : 1
  security_group_id = aws_security_group.services.id
  description       = "External TimescaleDB (Timescale Cloud: TLS on 5432 through NAT)"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "services_to_redis" {
  security_group_id            = aws_security_group.services.id
  description                  = "Redis (TLS)"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.redis.id
}

resource "aws_vpc_security_group_egress_rule" "services_https" {
  security_group_id = aws_security_group.services.id
  description       = "HTTPS through NAT: ECR, Secrets Manager, CloudWatch, Databento historical API"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# Databento's live gateway speaks its own protocol on TCP 13000; only ingestion carries this group.
resource "aws_security_group" "databento_live" {
  name        = "${local.prefix}-databento-live"
  description = "AI-OTS ingestion: Databento live feed egress"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-databento-live" })
}

resource "aws_vpc_security_group_egress_rule" "databento_live" {
  security_group_id = aws_security_group.databento_live.id
  description       = "Databento live (raw TCP) through NAT"
  ip_protocol       = "tcp"
  from_port         = 13000
  to_port           = 13000
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "db" {
  name        = "${local.prefix}-db"
  description = "AI-OTS PostgreSQL: from the services only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-db" })
}

resource "aws_vpc_security_group_ingress_rule" "db_from_services" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the services"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.services.id
}

resource "aws_security_group" "redis" {
  name        = "${local.prefix}-redis"
  description = "AI-OTS Redis: from the services only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_services" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the services"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = aws_security_group.services.id
}
