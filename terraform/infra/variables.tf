variable "aws_region" {
  description = "Region of the cluster and of every resource in this layer."
  type        = string
  default     = "eu-west-2"
}

variable "project" {
  description = "Name prefix of everything this layer creates (must match the bootstrap layer's)."
  type        = string
  default     = "counter-service"
}

variable "state_bucket" {
  description = "Terraform state bucket created by the bootstrap layer (its `state_bucket` output)."
  type        = string
}

variable "cluster_name" {
  description = "Name of the EKS cluster created by hand (an SCP forbids eks:CreateCluster); read as a data source."
  type        = string
  default     = "counter-service"
}

variable "network_cidr" {
  description = "Secondary CIDR added to the cluster's VPC for this layer's subnets, so no free range of an existing VPC has to be known. 100.64.0.0/10 space can be added to any RFC 1918 VPC."
  type        = string
  default     = "100.64.0.0/16"

  validation {
    condition     = can(cidrhost(var.network_cidr, 0)) && tonumber(split("/", var.network_cidr)[1]) <= 18
    error_message = "network_cidr must be a CIDR block of /18 or larger."
  }
}

variable "availability_zone_count" {
  description = "Number of availability zones for subnets, NAT gateways and nodes (at least 2)."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 4
    error_message = "Use between 2 and 4 availability zones."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per AZ (an AZ outage cannot cut the other AZs' egress). False shares one NAT gateway, saving about 35 USD/month per AZ at the price of that single point of failure."
  type        = bool
  default     = true
}

variable "node_instance_types" {
  description = "Graviton (arm64) instance types for the managed node group; all must be the same size for the Cluster Autoscaler's estimates."
  type        = list(string)
  default     = ["t4g.medium"]

  validation {
    condition     = alltrue([for t in var.node_instance_types : can(regex("^t4g\\.", t))])
    error_message = "The node group runs AL2023 ARM64 on Graviton t4g instances."
  }
}

variable "node_group_scaling" {
  description = "Bounds of each AZ's managed node group (one group per AZ); the Cluster Autoscaler moves each desired size between min and max."
  type = object({
    min_size     = number
    desired_size = number
    max_size     = number
  })
  default = {
    min_size     = 1
    desired_size = 1
    max_size     = 2
  }

  validation {
    condition     = var.node_group_scaling.min_size >= 1 && var.node_group_scaling.min_size <= var.node_group_scaling.desired_size && var.node_group_scaling.desired_size <= var.node_group_scaling.max_size
    error_message = "Need 1 <= min_size <= desired_size <= max_size (one node per AZ at least: the origin spreads across zones)."
  }
}

variable "node_disk_size_gib" {
  description = "Root volume size (gp3, encrypted) of each node."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the Container Insights and RDS log groups."
  type        = number
  default     = 30
}

variable "teardown" {
  description = "Set only by scripts/teardown.sh before a destroy: turns off the database's deletion protection and lets the ECR repository be deleted with its images."
  type        = bool
  default     = false
}

variable "kubernetes_version" {
  description = "Kubernetes minor the console-created cluster must run (node groups refuse another). EKS standard support for 1.35 ends 2027-03-27; move it with the pins listed in terraform/tests/test_versions.py."
  type        = string
  default     = "1.35"
}

variable "addon_versions" {
  description = "EKS add-on versions by add-on name. An add-on missing here gets the default version for the cluster's Kubernetes version."
  type        = map(string)
  default     = {}
}

variable "cluster_admin_principal_arns" {
  description = "IAM principals (people's SSO roles) granted cluster-admin through EKS access entries, in addition to the CI apply role."
  type        = list(string)
  default     = []
}

variable "ecr_repository_name" {
  description = "ECR repository for the origin image (the bootstrap layer's release role is scoped to this name)."
  type        = string
  default     = "counter-origin"
}

variable "ecr_keep_release_images" {
  description = "How many `sha-` tagged images ECR keeps; older ones expire (rollbacks reach this far back)."
  type        = number
  default     = 50
}

variable "db_instance_class" {
  description = "RDS instance class (Graviton)."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_engine_version" {
  description = "PostgreSQL major version; minor versions are upgraded automatically in the maintenance window."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gib" {
  description = "Initial gp3 storage; storage autoscaling grows it up to db_max_allocated_storage_gib."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage_gib" {
  description = "Upper bound for RDS storage autoscaling."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Run a synchronous standby in a second AZ (automatic failover in 1-2 minutes). Doubles the instance cost."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7
    error_message = "Keep at least 7 days of backups."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database. Turn off deliberately (apply) before a teardown."
  type        = bool
  default     = true
}

variable "db_name" {
  description = "Database created on the instance for the origin."
  type        = string
  default     = "counter"
}

variable "db_master_username" {
  description = "Master user name; its password is generated and rotated by RDS in Secrets Manager, never by Terraform."
  type        = string
  default     = "counter_admin"
}
