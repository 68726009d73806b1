# AI-OTS production on AWS at the default sizes (docs/deploy.md prices them).

module "aiots" {
  source = "../../modules/aiots"

  name                             = "aiots"
  environment                      = "production"
  image                            = var.image
  acm_certificate_arn              = var.acm_certificate_arn
  jwt_issuer                       = var.jwt_issuer
  alarm_email                      = var.alarm_email
  databento_enabled                = var.databento_enabled
  external_database_url_secret_arn = var.external_database_url_secret_arn
}
