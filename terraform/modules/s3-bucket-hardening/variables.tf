variable "bucket" {
  description = "Name (id) of the bucket to harden; the caller owns its aws_s3_bucket."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of that bucket, for the policy's resources."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for default encryption (SSE-KMS with an S3 Bucket Key); null means SSE-S3, for consumers that cannot write to KMS-encrypted buckets (ALB access logs)."
  type        = string
  default     = null
}

variable "object_ownership" {
  description = "BucketOwnerEnforced (ACLs off) unless a writer needs ACLs (CloudFront standard logging: BucketOwnerPreferred)."
  type        = string
  default     = "BucketOwnerEnforced"

  validation {
    condition     = contains(["BucketOwnerEnforced", "BucketOwnerPreferred"], var.object_ownership)
    error_message = "object_ownership must be BucketOwnerEnforced or BucketOwnerPreferred (ObjectWriter leaves objects to their writers)."
  }
}

variable "lifecycle_rules" {
  description = "Lifecycle rules, each enabled: id, optional key prefix (none = whole bucket), optional expiration of current objects, expiration of noncurrent versions, optional abort of incomplete multipart uploads (days)."
  type = list(object({
    id                           = string
    prefix                       = optional(string)
    expiration_days              = optional(number)
    noncurrent_days              = number
    abort_incomplete_upload_days = optional(number)
  }))

  validation {
    condition     = length(var.lifecycle_rules) > 0
    error_message = "A versioned bucket needs at least one rule that expires noncurrent versions."
  }
}

variable "policy_documents" {
  description = "The caller's own bucket policy statements (JSON policy documents), merged after the TLS-only rules."
  type        = list(string)
  default     = []
}
