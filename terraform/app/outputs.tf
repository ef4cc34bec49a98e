output "cloudfront_domain_name" {
  description = "The distribution's *.cloudfront.net name: the service's public URL unless aliases are set."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "cloudfront_distribution_id" {
  description = "Distribution id (invalidations; the Grafana CloudFront panels' DistributionId)."
  value       = aws_cloudfront_distribution.this.id
}

output "alb_dns_name" {
  description = "The ALB's DNS name (answers 403 to anything but CloudFront)."
  value       = aws_lb.this.dns_name
}

output "alb_security_group_id" {
  description = "The ALB's security group: the TargetGroupBinding's networking rule admits it to the origin port."
  value       = aws_security_group.alb.id
}

output "target_group_arn" {
  description = "Target group of the origin pods (TargetGroupBinding targetGroupARN)."
  value       = aws_lb_target_group.origin.arn
}

output "target_group_name" {
  description = "Target group name (TargetGroupBinding targetGroupName)."
  value       = aws_lb_target_group.origin.name
}

output "origin_verify_secret_arn" {
  description = "Secrets Manager secret holding the X-Origin-Verify values (ARN only)."
  value       = aws_secretsmanager_secret.origin_verify.arn
}

output "aws_load_balancer_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller."
  value       = aws_iam_role.irsa["aws-load-balancer-controller"].arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role of the Cluster Autoscaler."
  value       = aws_iam_role.irsa["cluster-autoscaler"].arn
}

output "adot_collector_role_arn" {
  description = "IRSA role for the ADOT collector's ServiceAccount (annotate it in manifests/overlays/prod)."
  value       = aws_iam_role.irsa["adot-collector"].arn
}

output "waf_web_acl_arn" {
  description = "The edge WAF web ACL, or null when waf_rate_limit is null."
  value       = var.waf_rate_limit == null ? null : aws_wafv2_web_acl.this[0].arn
}

output "logs_bucket" {
  description = "Bucket holding ALB (alb/) and CloudFront (cloudfront/) access logs."
  value       = aws_s3_bucket.logs.id
}

output "alerts_topic_arn" {
  description = "SNS topic for page and ticket alerts (Alertmanager sns_configs, CloudWatch alarms); subscribe the on-call integration to it."
  value       = aws_sns_topic.alerts.arn
}

output "heartbeat_topic_arn" {
  description = "SNS topic Alertmanager publishes the Watchdog to; its silence for 15 minutes raises the heartbeat alarm."
  value       = aws_sns_topic.heartbeat.arn
}

output "alerts_topic_region" {
  description = "Region of the alerts topic (us-east-1, where CloudFront and Route 53 metrics live): Alertmanager's sigv4 region."
  value       = "us-east-1"
}

output "pod_identity_role_arns" {
  description = "Pod Identity roles by workload (origin, migrate, alertmanager, grafana); the associations bind them, no annotation needed."
  value       = { for key, role in aws_iam_role.pod_identity : key => role.arn }
}

output "paging_alarm_names" {
  description = "Alarms (us-east-1) created with their actions off because they breach until the first deploy has succeeded; the bootstrap's deploy stage enables them."
  value       = [aws_cloudwatch_metric_alarm.heartbeat.alarm_name, aws_cloudwatch_metric_alarm.public_url.alarm_name]
}
