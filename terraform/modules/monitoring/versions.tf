terraform {
  # `check` blocks (used for the WAF region warning) need Terraform 1.5.
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The same range as the other modules; the local mirror (/opt/tf-plugins) holds 5.100.0.
      version = ">= 5.100.0, < 6.0.0"
      # CloudFront's alarms and their topic (us-east-1, where its metrics are).
      configuration_aliases = [aws.us_east_1]
    }
  }
}
