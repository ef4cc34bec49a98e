# Module: s3-bucket-hardening — what every bucket of this project gets, in one place.
#
# Owns, for a bucket its caller creates: versioning, default encryption (SSE-KMS with the caller's
# key, or SSE-S3 where a consumer cannot use KMS), a full public access block, object ownership,
# lifecycle rules, and the bucket policy: TLS-only and TLS 1.2+, plus the caller's own statements.
#
# NOTE: the caller keeps the `aws_s3_bucket` itself: its name, `force_destroy` and
# `lifecycle { prevent_destroy }` differ per bucket, and `prevent_destroy` cannot be a module input.
# Callers carry `moved` blocks from their old addresses, so adopting the module replaces nothing.

resource "aws_s3_bucket_versioning" "this" {
  bucket = var.bucket

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = var.bucket

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests; they mean nothing for SSE-S3.
    bucket_key_enabled = var.kms_key_arn == null ? null : true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = var.bucket
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = var.bucket

  rule {
    object_ownership = var.object_ownership
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = var.bucket

  dynamic "rule" {
    for_each = var.lifecycle_rules

    content {
      id     = rule.value.id
      status = "Enabled"

      # No prefix: the rule applies to the whole bucket (`filter {}`).
      filter {
        prefix = rule.value.prefix
      }

      dynamic "expiration" {
        for_each = rule.value.expiration_days == null ? [] : [rule.value.expiration_days]

        content {
          days = expiration.value
        }
      }

      noncurrent_version_expiration {
        noncurrent_days = rule.value.noncurrent_days
      }

      dynamic "abort_incomplete_multipart_upload" {
        for_each = rule.value.abort_incomplete_upload_days == null ? [] : [rule.value.abort_incomplete_upload_days]

        content {
          days_after_initiation = abort_incomplete_multipart_upload.value
        }
      }
    }
  }
}

data "aws_iam_policy_document" "transport" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [var.bucket_arn, "${var.bucket_arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyTlsOlderThan12"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [var.bucket_arn, "${var.bucket_arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

# The transport rules first, then the caller's statements (their Sids must not repeat these).
data "aws_iam_policy_document" "this" {
  source_policy_documents = concat([data.aws_iam_policy_document.transport.json], var.policy_documents)
}

resource "aws_s3_bucket_policy" "this" {
  bucket = var.bucket
  policy = data.aws_iam_policy_document.this.json

  # The policy must not land before public access is blocked (it would be evaluated as public).
  depends_on = [aws_s3_bucket_public_access_block.this]
}
