terraform {
  # 1.6+: terraform_data, validation messages naming the variable; tested with 1.11.
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = var.tags
  }
}

# CloudFront certificates and CLOUDFRONT-scope WAF live in us-east-1 whatever the platform's region.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = var.tags
  }
}
