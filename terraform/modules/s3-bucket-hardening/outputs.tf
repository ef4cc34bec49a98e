output "bucket" {
  description = "The hardened bucket's name, once its policy is in place."
  value       = var.bucket

  depends_on = [aws_s3_bucket_policy.this]
}
