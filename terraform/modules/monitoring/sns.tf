# The topic every alarm notifies (ALARM and OK). Encrypted with the platform's KMS key; that
# key's policy must allow cloudwatch.amazonaws.com kms:GenerateDataKey* and kms:Decrypt, or
# CloudWatch cannot publish to it.
resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  display_name      = "${var.name_prefix} alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

# Lets CloudWatch alarms of this account (and only this account) publish to the topic; the
# account owner keeps its default rights.
resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }

  statement {
    sid = "AccountManage"
    actions = [
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:AddPermission",
      "sns:RemovePermission",
      "sns:DeleteTopic",
      "sns:Subscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

data "aws_partition" "current" {}

# Optional e-mail subscription; the address must confirm it from the message AWS sends.
resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# The CloudFront alarms live in us-east-1 (alarms.tf), and an alarm notifies only a topic of its
# own region: a second topic there, with the same subscriber. Encrypted with the AWS-managed SNS
# key, because the platform's key is regional and CloudWatch may use the managed key.
#trivy:ignore:AVD-AWS-0136 The platform's customer-managed key is regional and cannot encrypt a us-east-1 topic; these messages are alarm state changes only (names, thresholds), encrypted at rest with the AWS-managed SNS key.
resource "aws_sns_topic" "edge" {
  provider          = aws.us_east_1
  count             = length(var.cloudfront_distribution_ids) > 0 ? 1 : 0
  name              = "${var.name_prefix}-edge-alarms"
  display_name      = "${var.name_prefix} CloudFront alarms"
  kms_master_key_id = "alias/aws/sns"
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "edge_email" {
  provider  = aws.us_east_1
  count     = length(var.cloudfront_distribution_ids) > 0 && var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.edge[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
