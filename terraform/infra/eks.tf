# Everything attached to the hand-made cluster: IRSA provider, access entries, node group, add-ons.

# IRSA: the app layer's roles (ALB controller, Cluster Autoscaler, ADOT) trust this provider with
# `aud` and `sub` conditions.
# NOTE: no thumbprint_list: IAM validates the EKS issuer against its own trusted CAs.
resource "aws_iam_openid_connect_provider" "eks" {
  url            = local.oidc_issuer_url
  client_id_list = ["sts.amazonaws.com"]
}

# ---------------------------------------------------------------------------------------------
# Access entries (the cluster's authentication mode must include API — README, manual settings).
# ---------------------------------------------------------------------------------------------

locals {
  access_entries = merge(
    {
      # The app layer installs Helm releases and the bootstrap pipeline installs Argo CD.
      ci-apply = {
        principal_arn = local.bootstrap.terraform_apply_role_arn
        policy        = "AmazonEKSClusterAdminPolicy"
      }
      # Plans refresh Helm releases, which Helm stores as Secrets: view including Secrets.
      ci-plan = {
        principal_arn = local.bootstrap.terraform_plan_role_arn
        policy        = "AmazonEKSAdminViewPolicy"
      }
    },
    { for i, arn in var.cluster_admin_principal_arns : "admin-${i}" => {
      principal_arn = arn
      policy        = "AmazonEKSClusterAdminPolicy"
    } },
  )
}

resource "aws_eks_access_entry" "this" {
  for_each = local.access_entries

  cluster_name  = data.aws_eks_cluster.this.name
  principal_arn = each.value.principal_arn
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "this" {
  for_each = local.access_entries

  cluster_name  = data.aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.this[each.key].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/${each.value.policy}"

  access_scope {
    type = "cluster"
  }
}

# ---------------------------------------------------------------------------------------------
# Managed node groups: Graviton t4g, AL2023 ARM64, one group per AZ. The origin spreads its pods
# across zones with a hard constraint (DoNotSchedule); a single group spanning three AZs lets the
# Cluster Autoscaler add a node in any zone, so a pending pod that needs zone B can wait forever.
# One group per zone lets it pick the group (zone) the pod needs; balance-similar-node-groups
# (terraform/app/helm.tf) keeps the groups level.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name                 = "${local.name}-node"
  path                 = local.iam_path
  permissions_boundary = local.permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.node_trust.json
}

# The CNI policy stays on the node role: aws-node must work before any pod-level identity does.
# SSM replaces SSH (no key pairs, no port 22).
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# Identity of the nodes (and so of their pods, which share the node ENI's groups) for the RDS and
# ALB rules. It carries no rules itself: the cluster security group, also attached, already allows
# node <-> node and node <-> control plane traffic and all egress.
resource "aws_security_group" "node" {
  #checkov:skip=CKV2_AWS_5:Attached to the nodes through the launch template below.
  name        = "${local.name}-node"
  description = "Counter Service nodes and pods: source identity for RDS and target of the ALB"
  vpc_id      = data.aws_vpc.cluster.id

  tags = {
    Name = "${local.name}-node"
  }
}

resource "aws_launch_template" "node" {
  name_prefix            = "${local.name}-node-"
  update_default_version = true

  # The launch template replaces EKS's default groups, so the cluster group is listed explicitly.
  vpc_security_group_ids = [local.cluster_security_group_id, aws_security_group.node.id]

  # IMDSv2 only, hop limit 1: pods cannot reach the node role's credentials. Every in-cluster AWS
  # client gets its own role (IRSA / Pod Identity) and its region explicitly.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.node_disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"

    tags = {
      Name = "${local.name}-node"
    }
  }
}

resource "aws_eks_node_group" "this" {
  for_each = aws_subnet.private

  cluster_name    = data.aws_eks_cluster.this.name
  node_group_name = "${local.name}-arm64-${each.key}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = [each.value.id]
  ami_type        = "AL2023_ARM_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.node_instance_types

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # Bounds per zone.
  scaling_config {
    min_size     = var.node_group_scaling.min_size
    desired_size = var.node_group_scaling.desired_size
    max_size     = var.node_group_scaling.max_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = {
    "counter-service/node-pool" = "general-arm64"
  }

  lifecycle {
    # The Cluster Autoscaler owns the desired size once the group exists.
    ignore_changes = [scaling_config[0].desired_size]
    # The console-created cluster must run the minor everything else is pinned to (the Cluster
    # Autoscaler chart, Pod Security's enforce-version, the schemas the manifests are checked with).
    precondition {
      condition     = data.aws_eks_cluster.this.version == var.kubernetes_version
      error_message = "The cluster runs Kubernetes ${data.aws_eks_cluster.this.version}, but this deployment is pinned to ${var.kubernetes_version} (terraform/README.md step 3). Upgrade the cluster, or move every pin together (terraform/tests/test_versions.py)."
    }
  }

  # Route tables must exist for nodes to reach the control plane and ECR when they boot.
  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_route_table_association.private,
  ]
}

# ---------------------------------------------------------------------------------------------
# Add-ons. Versions: the default for the cluster's Kubernetes version unless pinned in
# var.addon_versions. Networking add-ons go first (nodes need them to turn Ready); the rest
# schedule pods and so wait for the node group.
# ---------------------------------------------------------------------------------------------

locals {
  addons_before_nodes = toset(["vpc-cni", "kube-proxy", "eks-pod-identity-agent"])
  addons_after_nodes  = toset(["coredns", "metrics-server", "amazon-cloudwatch-observability", "aws-ebs-csi-driver"])

  # Configuration values per add-on (JSON, validated by EKS against the add-on's schema).
  # vpc-cni enforces Kubernetes NetworkPolicies only with its network policy agent turned on; the
  # manifests rely on NetworkPolicies for the origin and the collector.
  addon_configuration = {
    vpc-cni = jsonencode({ enableNetworkPolicy = "true" })
    # The agent's own configuration replaces the add-on's default, which also turns on Application
    # Signals (traces and metrics through X-Ray, needing AWSXrayWriteOnlyAccess on this role). The
    # origin's traces go to X-Ray through the ADOT collector instead, so only Container Insights
    # (enhanced observability: per-pod metrics, billed per observation) stays on.
    amazon-cloudwatch-observability = jsonencode({
      agent = {
        config = {
          logs = { metrics_collected = { kubernetes = { enhanced_container_insights = true } } }
        }
      }
    })
  }

  # Add-ons whose controller calls AWS: their service account gets a role through Pod Identity.
  addon_pod_identity = {
    amazon-cloudwatch-observability = {
      service_account = "cloudwatch-agent"
      role_arn        = aws_iam_role.pod_identity["cloudwatch-observability"].arn
    }
    aws-ebs-csi-driver = {
      service_account = "ebs-csi-controller-sa"
      role_arn        = aws_iam_role.pod_identity["ebs-csi-driver"].arn
    }
  }
}

data "aws_eks_addon_version" "this" {
  for_each = setunion(local.addons_before_nodes, local.addons_after_nodes)

  addon_name         = each.key
  kubernetes_version = local.cluster_version
  most_recent        = false
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name                = data.aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, data.aws_eks_addon_version.this[each.key].version)
  configuration_values        = lookup(local.addon_configuration, each.key, null)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "after_nodes" {
  for_each = local.addons_after_nodes

  cluster_name                = data.aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, data.aws_eks_addon_version.this[each.key].version)
  configuration_values        = lookup(local.addon_configuration, each.key, null)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  dynamic "pod_identity_association" {
    for_each = contains(keys(local.addon_pod_identity), each.key) ? [local.addon_pod_identity[each.key]] : []

    content {
      service_account = pod_identity_association.value.service_account
      role_arn        = pod_identity_association.value.role_arn
    }
  }

  depends_on = [
    aws_eks_node_group.this,
    aws_eks_addon.before_nodes,
    aws_cloudwatch_log_group.container_insights,
  ]
}

# ---------------------------------------------------------------------------------------------
# Pod Identity roles of the add-ons. Trust: the EKS pods service, only on behalf of this
# account's cluster (the association names the namespace and service account).
# ---------------------------------------------------------------------------------------------

locals {
  addon_roles = {
    # Container Insights metrics and Fluent Bit logs to CloudWatch.
    cloudwatch-observability = "arn:${local.partition}:iam::aws:policy/CloudWatchAgentServerPolicy"
    # Create, attach, snapshot and delete EBS volumes for PersistentVolumeClaims (Prometheus,
    # Alertmanager, Grafana). Encrypted gp3 with the account's aws/ebs key needs no KMS grant.
    ebs-csi-driver = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
  }
}

data "aws_iam_policy_document" "pod_identity_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [data.aws_eks_cluster.this.arn]
    }
  }
}

resource "aws_iam_role" "pod_identity" {
  for_each = local.addon_roles

  name                 = "${local.name}-${each.key}"
  path                 = local.iam_path
  permissions_boundary = local.permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.pod_identity_trust.json
}

resource "aws_iam_role_policy_attachment" "pod_identity" {
  for_each = local.addon_roles

  role       = aws_iam_role.pod_identity[each.key].name
  policy_arn = each.value
}

# The CloudWatch observability add-on creates these groups without a retention (kept forever);
# created here first, with one. Not "dataplane" and "host": on Amazon Linux 2023 nodes (journald, no
# /var/log/messages) Fluent Bit sends nothing there (CloudWatch docs, "Quick start with the Amazon
# CloudWatch Observability EKS add-on"), so they would only be empty groups.
resource "aws_cloudwatch_log_group" "container_insights" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with a service key; container logs of this service carry no credentials (the origin logs none).
  #checkov:skip=CKV_AWS_338:30 days covers incident analysis; a year of container logs is cost without a consumer.
  for_each = toset(["application", "performance"])

  name              = "/aws/containerinsights/${data.aws_eks_cluster.this.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

# Addresses before the add-on roles shared one map.
moved {
  from = aws_iam_role.cloudwatch_observability
  to   = aws_iam_role.pod_identity["cloudwatch-observability"]
}

moved {
  from = aws_iam_role_policy_attachment.cloudwatch_observability
  to   = aws_iam_role_policy_attachment.pod_identity["cloudwatch-observability"]
}

# EKS creates its control-plane log group itself when the cluster is made with logging on (the
# console settings, terraform/README.md step 3), without a retention. Adopt it and give it one.
# NOTE: the import fails plainly ("Cannot import non-existent remote object") if the cluster was
# created without control-plane logging: turn logging on in the console first.
import {
  to = aws_cloudwatch_log_group.control_plane
  id = "/aws/eks/${var.cluster_name}/cluster"
}

resource "aws_cloudwatch_log_group" "control_plane" {
  #checkov:skip=CKV_AWS_158:EKS writes this group with the CloudWatch service key; the audit log carries no credentials (tokens are redacted by EKS).
  #checkov:skip=CKV_AWS_338:30 days of API/audit/authenticator logs cover incident analysis; CloudTrail keeps the account's own audit trail.
  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
}
