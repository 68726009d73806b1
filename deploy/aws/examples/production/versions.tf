terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }

  # Remote state: S3 with encryption and locking. The state holds the generated database and Redis
  # passwords, so the bucket must be private and encrypted. Fill in and run `terraform init`
  # (deploy.sh does, with -backend-config=backend.hcl when that file exists).
  backend "s3" {
    key     = "aiots/production/terraform.tfstate"
    encrypt = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = { Project = "aiots", Environment = "production" }
  }
}
