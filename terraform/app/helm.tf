# Cluster add-ons that are not EKS add-ons, as Helm releases pinned to exact chart versions.
# Argo CD deploys the application; these two are infrastructure the application relies on.

resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  namespace  = "kube-system"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = var.aws_load_balancer_controller_chart_version
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    clusterName = local.infra.cluster_name
    # Given explicitly: with IMDS hop limit 1 the pods cannot look these up.
    region       = var.aws_region
    vpcId        = local.infra.vpc_id
    replicaCount = 2
    serviceAccount = {
      create = true
      name   = local.irsa["aws-load-balancer-controller"].service_account
      annotations = {
        "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["aws-load-balancer-controller"].arn
      }
    }
    # Services of type LoadBalancer are not this controller's job here.
    enableServiceMutatorWebhook = false
    podDisruptionBudget = {
      maxUnavailable = 1
    }
  })]

  depends_on = [aws_iam_role_policy.aws_load_balancer_controller]
}

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  namespace  = "kube-system"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.cluster_autoscaler_chart_version
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = var.aws_region
    autoDiscovery = {
      clusterName = local.infra.cluster_name
    }
    rbac = {
      serviceAccount = {
        create = true
        name   = local.irsa["cluster-autoscaler"].service_account
        annotations = {
          "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["cluster-autoscaler"].arn
        }
      }
    }
    extraArgs = {
      # Zone-spread replicas need a node in each AZ's group to be considered alike.
      balance-similar-node-groups   = true
      expander                      = "least-waste"
      skip-nodes-with-system-pods   = false
      skip-nodes-with-local-storage = false
    }
  })]

  depends_on = [aws_iam_role_policy.cluster_autoscaler]
}
