# Layer: infra — everything around the manually created EKS cluster that does not depend on the
# application being deployed.
#
# Owns: subnets (public + private per AZ) in the cluster's VPC on a secondary CIDR, NAT gateways,
# the S3 gateway endpoint; the cluster's IRSA OIDC provider, EKS access entries and add-ons
# (VPC CNI, CoreDNS, kube-proxy, metrics-server, Pod Identity agent, CloudWatch observability for
# Fluent Bit logs); the Graviton managed node group; the origin's ECR repository; RDS PostgreSQL.
#
# Reads only what exists before it runs: the cluster (created by hand: an organisation SCP denies
# eks:CreateCluster), the cluster's VPC and internet gateway, and the bootstrap layer's state.
# Nothing here waits on Kubernetes objects or on the app layer (the original's ALB data source
# made a fresh account unplannable).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "terraform_remote_state" "bootstrap" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = "bootstrap/terraform.tfstate"
    region = var.aws_region
  }
}

locals {
  name       = var.project
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  bootstrap = data.terraform_remote_state.bootstrap.outputs

  # Every role this layer creates lives under the project's IAM path with the workload boundary:
  # the CI apply role is only allowed to create roles that way.
  iam_path             = local.bootstrap.workload_iam_path
  permissions_boundary = local.bootstrap.workload_permissions_boundary_arn

  cluster_version           = data.aws_eks_cluster.this.version
  cluster_security_group_id = data.aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  oidc_issuer_url           = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}
