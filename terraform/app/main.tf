# Layer: app — what the service needs on top of infra, up to the edge.
#
# Owns: IRSA roles (ALB controller, Cluster Autoscaler, ADOT collector -> X-Ray) trusted with
# `aud` and `sub` conditions; the ALB controller and Cluster Autoscaler as pinned Helm releases;
# the ALB (only reachable from CloudFront: origin-facing prefix list + secret header), its
# listener, target group and security groups; CloudFront with the cache policies, origin request
# policies, response headers policy and functions read from edge/ (the one source of truth the
# edge tests assert on); the optional WAF rate limit; the access-log bucket; the workloads' Pod
# Identity roles (origin: rds-db:connect as counter_app; migrate: the master secret; Alertmanager:
# the alerts topic; Grafana: CloudWatch read-only); the alerts topic with the edge 5xx alarm and a
# Route 53 probe of the public URL.
#
# Kubernetes binds the origin pods to the target group with a TargetGroupBinding (manifests/), so
# the ALB exists at plan time and CloudFront can point at it: no ALB created by an Ingress, no
# data source waiting on Argo CD.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "terraform_remote_state" "infra" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = "infra/terraform.tfstate"
    region = var.aws_region
  }
}

data "aws_eks_cluster" "this" {
  name = local.infra.cluster_name
}

locals {
  name       = var.project
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  infra = data.terraform_remote_state.infra.outputs

  # Edge configuration as data: edge/cloudfront.json and edge/functions/*.js.
  edge_dir = "${path.module}/../../edge"
  edge     = jsondecode(file("${local.edge_dir}/cloudfront.json"))

  # HTTPS from CloudFront to the ALB needs a name a certificate can cover (origin_domain_name).
  origin_https = var.origin_domain_name != null

  # The origin's public listener (LISTEN_ADDR in the origin's configuration).
  origin_port = 8080
}
