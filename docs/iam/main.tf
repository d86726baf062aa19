# GitHub OIDC -> one AWS role per GitHub environment, with the least-privilege policies of this folder.
# The JSON files are the single source: Terraform reads them, so the two never disagree.
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

# The trust policy: only jobs of this repository that run in the named GitHub environment. A job with
# `environment: production` presents `sub` = repo:ORG/REPO:environment:production, whatever the branch.
data "aws_iam_policy_document" "trust" {
  for_each = toset(["stage", "production"])

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.github.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${each.key}"]
    }
  }
}

resource "aws_iam_role" "stage" {
  name                 = "cloudshop-deploy-stage"
  assume_role_policy   = data.aws_iam_policy_document.trust["stage"].json
  max_session_duration = 3600
}

resource "aws_iam_role" "prod" {
  name                 = "cloudshop-deploy-prod"
  assume_role_policy   = data.aws_iam_policy_document.trust["production"].json
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

output "role_arns" {
  value = {
    stage = aws_iam_role.stage.arn
    prod  = aws_iam_role.prod.arn
  }
}
