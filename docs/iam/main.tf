# GitHub OIDC -> one AWS role per GitHub environment, with the least-privilege policies of this folder.
# The JSON files are the single source: Terraform reads every one of them (the trust policies too, with
# the repository of `github_repository`), so the two never disagree.
#
#   terraform init && terraform apply -var github_repository=cloudshop/cloudshop
#
# Account 746669238399, region us-east-1 (CloudShop). Names follow docs/environments.md.

terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.0" }
  }
}

provider "aws" {
  region = "us-east-1"
}

variable "github_repository" {
  description = "ORG/REPO of the app repository whose workflows deploy (or ORG@ORGID/REPO@REPOID, see docs/iam.md)"
  type        = string
  default     = "cloudshop/cloudshop"
}

# One per account. If it exists already, import it instead:
#   terraform import aws_iam_openid_connect_provider.github arn:aws:iam::746669238399:oidc-provider/token.actions.githubusercontent.com
resource "aws_iam_openid_connect_provider" "github" {
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

# The trust policies: only jobs of this repository that run in the named GitHub environment. A job with
# `environment: production` presents `sub` = repo:ORG/REPO:environment:production, whatever the branch.
# The files name CloudShop's repository; another one is substituted here.
locals {
  trust = {
    for env, file_name in { stage = "trust-stage.json", production = "trust-production.json" } :
    env => replace(file("${path.module}/${file_name}"), "repo:cloudshop/cloudshop:", "repo:${var.github_repository}:")
  }
}

# The trust files name the provider by its ARN: create it first.
resource "aws_iam_role" "stage" {
  depends_on           = [aws_iam_openid_connect_provider.github]
  name                 = "cloudshop-deploy-stage"
  assume_role_policy   = local.trust["stage"]
  max_session_duration = 3600
}

resource "aws_iam_role" "prod" {
  depends_on           = [aws_iam_openid_connect_provider.github]
  name                 = "cloudshop-deploy-prod"
  assume_role_policy   = local.trust["production"]
  max_session_duration = 3600
}

# stage: every push deploys; `command: rollback` on demand.
resource "aws_iam_role_policy" "stage_deploy" {
  name   = "cloudshop-deploy"
  role   = aws_iam_role.stage.id
  policy = file("${path.module}/deploy-stage.json")
}

resource "aws_iam_role_policy" "stage_rollback" {
  name   = "cloudshop-rollback"
  role   = aws_iam_role.stage.id
  policy = file("${path.module}/rollback-stage.json")
}

# prod: only promotions of what passed stage (reads the stage repository), and rollbacks.
resource "aws_iam_role_policy" "prod_promote" {
  name   = "cloudshop-promote"
  role   = aws_iam_role.prod.id
  policy = file("${path.module}/promote-prod.json")
}

resource "aws_iam_role_policy" "prod_rollback" {
  name   = "cloudshop-rollback"
  role   = aws_iam_role.prod.id
  policy = file("${path.module}/rollback-prod.json")
}

resource "aws_iam_role_policy" "prod_releases" {
  name   = "cloudshop-releases"
  role   = aws_iam_role.prod.id
  policy = file("${path.module}/releases-prod.json")
}

# Break glass: the roles a person on call assumes from a laptop when GitHub Actions is down
# (docs/cli.md): trusted by the on-call SSO permission set or IAM users with MFA, never by GitHub, with
# the policies the action's roles already have.
locals {
  break_glass = {
    "prod/rollback"  = "rollback-prod.json"
    "prod/releases"  = "releases-prod.json"
    "stage/deploy"   = "deploy-stage.json"
    "stage/rollback" = "rollback-stage.json"
  }
}

resource "aws_iam_role" "break_glass" {
  for_each             = toset(["stage", "prod"])
  name                 = "cloudshop-break-glass-${each.key}"
  assume_role_policy   = file("${path.module}/break-glass-trust.json")
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "break_glass" {
  for_each = local.break_glass
  name     = "cloudshop-${split("/", each.key)[1]}"
  role     = aws_iam_role.break_glass[split("/", each.key)[0]].id
  policy   = file("${path.module}/${each.value}")
}

# Only when an environment sets `cloudfront-distribution-id` (CloudShop's do not): the invalidation of the
# changed HTML paths.
variable "cloudfront_environments" {
  description = "Roles (stage, prod) whose environment sets cloudfront-distribution-id"
  type        = set(string)
  default     = []
}

resource "aws_iam_role_policy" "cloudfront_invalidation" {
  for_each = var.cloudfront_environments
  name     = "cloudshop-cloudfront-invalidation"
  role     = each.key == "prod" ? aws_iam_role.prod.id : aws_iam_role.stage.id
  policy   = file("${path.module}/cloudfront-invalidation.json")
}

output "role_arns" {
  value = {
    stage             = aws_iam_role.stage.arn
    prod              = aws_iam_role.prod.arn
    break_glass_stage = aws_iam_role.break_glass["stage"].arn
    break_glass_prod  = aws_iam_role.break_glass["prod"].arn
  }
}
