# IRSA roles. Each trusts the cluster's OIDC provider only for `aud = sts.amazonaws.com` and the
# one ServiceAccount (`sub = system:serviceaccount:<namespace>:<name>`) that uses it.

locals {
  oidc_issuer = local.infra.oidc_issuer_host_path

  irsa = {
    aws-load-balancer-controller = {
      namespace       = "kube-system"
      service_account = "aws-load-balancer-controller"
    }
    cluster-autoscaler = {
      namespace       = "kube-system"
      service_account = "cluster-autoscaler"
    }
    adot-collector = {
      namespace       = var.app_namespace
      service_account = "adot-collector"
    }
  }
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.infra.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each = local.irsa

  name                 = "${local.name}-${each.key}"
  path                 = local.infra.iam_path
  permissions_boundary = local.infra.permissions_boundary_arn
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust[each.key].json
}

# ---------------------------------------------------------------------------------------------
# ALB controller: only TargetGroupBinding is used (Terraform owns the ALB), so the role can
# register targets in this one target group and open the origin port to the ALB on the node
# groups — nothing to create load balancers. An Ingress or LoadBalancer Service would fail with
# AccessDenied, which is the intent.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "aws_load_balancer_controller" {
  #checkov:skip=CKV_AWS_356:Describe/Get calls of ELBv2 and EC2 have no resource-level permissions; every write below is scoped to ARNs.
  statement {
    sid = "Discover"
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
      "ec2:GetSecurityGroupsForVpc",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "RegisterOriginPods"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = [aws_lb_target_group.origin.arn]
  }

  # TargetGroupBinding `networking` rules: the controller opens the origin port to the ALB's group
  # on the group it finds on the pods' ENIs (the cluster security group).
  statement {
    sid     = "OpenOriginPortToAlb"
    actions = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = [
      "arn:${local.partition}:ec2:${var.aws_region}:${local.account_id}:security-group/${local.infra.cluster_security_group_id}",
      "arn:${local.partition}:ec2:${var.aws_region}:${local.account_id}:security-group/${local.infra.node_security_group_id}",
    ]
  }
}

resource "aws_iam_role_policy" "aws_load_balancer_controller" {
  name   = "target-group-binding"
  role   = aws_iam_role.irsa["aws-load-balancer-controller"].id
  policy = data.aws_iam_policy_document.aws_load_balancer_controller.json
}

# ---------------------------------------------------------------------------------------------
# Cluster Autoscaler: resize only the autoscaling groups EKS tagged as this cluster's.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "cluster_autoscaler" {
  #checkov:skip=CKV_AWS_356:Describe calls of Auto Scaling and EC2 have no resource-level permissions; the writes are conditioned on the cluster's ASG tag.
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${var.aws_region}:${local.account_id}:nodegroup/${local.infra.cluster_name}/*/*"]
  }

  statement {
    sid       = "ResizeThisClustersGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.infra.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.irsa["cluster-autoscaler"].id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

# ---------------------------------------------------------------------------------------------
# ADOT collector: send traces to X-Ray, nothing else.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "adot_collector" {
  role       = aws_iam_role.irsa["adot-collector"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"
}
