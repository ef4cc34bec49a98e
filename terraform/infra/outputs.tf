output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = data.aws_eks_cluster.this.name
}

output "vpc_id" {
  description = "The cluster's VPC, which holds this layer's subnets."
  value       = data.aws_vpc.cluster.id
}

output "availability_zones" {
  description = "Availability zones used by subnets, NAT gateways and nodes."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnets (NAT gateways, the ALB)."
  value       = [for s in aws_subnet.public : s.id]
}

output "private_subnet_ids" {
  description = "Private subnets (nodes, pods, RDS)."
  value       = [for s in aws_subnet.private : s.id]
}

output "node_security_group_id" {
  description = "Security group of the nodes and their pods; the ALB is admitted to it on the origin port."
  value       = aws_security_group.node.id
}

output "cluster_security_group_id" {
  description = "The cluster security group (on the control plane ENIs and on every node)."
  value       = local.cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "IRSA OIDC provider of the cluster."
  value       = aws_iam_openid_connect_provider.eks.arn
}

output "oidc_issuer_host_path" {
  description = "Cluster OIDC issuer without https:// — the prefix of the `:aud`/`:sub` condition keys."
  value       = replace(local.oidc_issuer_url, "https://", "")
}

output "iam_path" {
  description = "IAM path for roles of the app layer (the CI apply role may only create roles there)."
  value       = local.iam_path
}

output "permissions_boundary_arn" {
  description = "Permissions boundary the app layer's roles must carry."
  value       = local.permissions_boundary
}

output "node_group_names" {
  description = "Managed node groups, one per AZ (their autoscaling groups are what the Cluster Autoscaler resizes)."
  value       = { for az, group in aws_eks_node_group.this : az => group.node_group_name }
}

output "ecr_repository_url" {
  description = "Repository URL of the origin image (<registry>/<name>)."
  value       = aws_ecr_repository.origin.repository_url
}

output "ecr_repository_arn" {
  description = "ARN of the origin image repository."
  value       = aws_ecr_repository.origin.arn
}

output "db_endpoint" {
  description = "RDS endpoint host name (TLS required; verify against the RDS CA bundle)."
  value       = aws_db_instance.this.address
}

output "db_port" {
  description = "RDS port."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Database for the origin."
  value       = aws_db_instance.this.db_name
}

output "db_resource_id" {
  description = "The instance's resource id (db-…): IAM database authentication names it in rds-db:connect ARNs."
  value       = aws_db_instance.this.resource_id
}

output "db_final_snapshot_identifier" {
  description = "Name of the snapshot RDS takes when the instance is destroyed (scripts/teardown.sh prints it)."
  value       = aws_db_instance.this.final_snapshot_identifier
}

output "db_master_user_secret_arn" {
  description = "Secrets Manager secret (managed and rotated by RDS) holding the master credentials. The ARN only: the value never enters Terraform."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "vpc_cidr" {
  description = "The CIDR the layer's subnets (ALB, nodes, RDS) are carved from; the prod overlay's NetworkPolicies admit the ALB and reach PostgreSQL within it."
  value       = aws_vpc_ipv4_cidr_block_association.this.cidr_block
}
