# One bucket for ALB access logs (alb/) and CloudFront standard logs (cloudfront/).
# NOTE: SSE-S3, not KMS: ALB access logs can only be delivered to SSE-S3 buckets. ACLs stay enabled
# (BucketOwnerPreferred) because CloudFront standard logging delivers through the bucket ACL.

data "aws_elb_service_account" "this" {}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Access logs are not replicated to a second region; losing them loses no service data.
  #checkov:skip=CKV_AWS_145:ALB access logs only support SSE-S3 (AES256) buckets.
  #checkov:skip=CKV2_AWS_62:No consumer for object events on the log bucket.
  bucket = "${local.name}-edge-logs-${local.account_id}-${var.aws_region}"

  # Versioned: only scripts/teardown.sh sets var.teardown, and then destroy deletes every version.
  force_destroy = var.teardown
}

# Versioning, SSE-S3, public access block, ownership, lifecycle and the TLS-only policy: the
# project's one hardened-bucket definition, plus the log writers' statements below.
module "logs_bucket" {
  #checkov:skip=CKV2_AWS_65:CloudFront standard logging writes through the bucket ACL and needs ACLs enabled.
  source = "../modules/s3-bucket-hardening"

  bucket           = aws_s3_bucket.logs.id
  bucket_arn       = aws_s3_bucket.logs.arn
  kms_key_arn      = null
  object_ownership = "BucketOwnerPreferred"

  lifecycle_rules = [{
    id                           = "expire-access-logs"
    expiration_days              = var.log_retention_days
    noncurrent_days              = 1
    abort_incomplete_upload_days = 1
  }]

  policy_documents = [data.aws_iam_policy_document.logs.json]
}

# The hardening used to be written out here: these keep every object where it is in the state.
moved {
  from = aws_s3_bucket_ownership_controls.logs
  to   = module.logs_bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_public_access_block.logs
  to   = module.logs_bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.logs
  to   = module.logs_bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_versioning.logs
  to   = module.logs_bucket.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.logs
  to   = module.logs_bucket.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.logs
  to   = module.logs_bucket.aws_s3_bucket_policy.this
}

# The log writers' statements; the module puts the TLS-only rules before them.
data "aws_iam_policy_document" "logs" {
  # Regions older than August 2022 (eu-west-2 among them) deliver as the regional ELB account;
  # newer ones as the log delivery service. Both are admitted, to the alb/ prefix only.
  statement {
    sid       = "AlbAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }

  statement {
    sid       = "AlbAccessLogsDeliveryService"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }
}
