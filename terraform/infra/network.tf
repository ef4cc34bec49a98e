# Subnets for nodes, RDS, NAT gateways and the ALB, added to the cluster's VPC on a secondary CIDR.
#
# The cluster is created by hand before this layer (it needs a VPC at creation), so this layer
# cannot own the VPC itself. A secondary CIDR (default 100.64.0.0/16) makes the layer work in any
# VPC — including a fresh account's default VPC — without knowing which ranges are free.
# Layout per AZ: a /24 public subnet (NAT gateway, ALB) and a /20 private one (nodes and pods —
# the VPC CNI gives every pod a VPC address —, RDS).

data "aws_vpc" "cluster" {
  id = data.aws_eks_cluster.this.vpc_config[0].vpc_id
}

# NOTE: the cluster's VPC must have an internet gateway (every default VPC and every VPC made by
# the console's "VPC and more" does). It exists before this layer runs.
data "aws_internet_gateway" "cluster" {
  filter {
    name   = "attachment.vpc-id"
    values = [data.aws_vpc.cluster.id]
  }
}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:The zones are sorted and the first availability_zone_count taken; AWS names new zones with later letters, so the set does not shift.
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  azs = slice(sort(data.aws_availability_zones.available.names), 0, var.availability_zone_count)

  # /24s from the first /20 of the block for public subnets, the following /20s for private ones.
  public_subnet_cidrs  = { for i, az in local.azs : az => cidrsubnet(var.network_cidr, 8, i) }
  private_subnet_cidrs = { for i, az in local.azs : az => cidrsubnet(var.network_cidr, 4, i + 1) }

  nat_azs = var.nat_gateway_per_az ? local.azs : [local.azs[0]]
}

resource "aws_vpc_ipv4_cidr_block_association" "this" {
  vpc_id     = data.aws_vpc.cluster.id
  cidr_block = var.network_cidr
}

resource "aws_subnet" "public" {
  for_each = local.public_subnet_cidrs

  # Referencing the association (not the VPC) orders subnet creation after the CIDR exists.
  vpc_id                  = aws_vpc_ipv4_cidr_block_association.this.vpc_id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = false

  tags = {
    Name = "${local.name}-public-${each.key}"
    Tier = "public"
  }
}

resource "aws_subnet" "private" {
  for_each = local.private_subnet_cidrs

  vpc_id            = aws_vpc_ipv4_cidr_block_association.this.vpc_id
  availability_zone = each.key
  cidr_block        = each.value

  tags = {
    Name = "${local.name}-private-${each.key}"
    Tier = "private"
  }
}

resource "aws_route_table" "public" {
  vpc_id = data.aws_vpc.cluster.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = data.aws_internet_gateway.cluster.internet_gateway_id
  }

  tags = {
    Name = "${local.name}-public"
  }
}

resource "aws_route_table_association" "public" {
  for_each = aws_subnet.public

  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  for_each = toset(local.nat_azs)

  domain = "vpc"

  tags = {
    Name = "${local.name}-nat-${each.key}"
  }
}

resource "aws_nat_gateway" "this" {
  for_each = toset(local.nat_azs)

  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.public[each.key].id

  tags = {
    Name = "${local.name}-${each.key}"
  }
}

# One private route table per AZ, each through its own AZ's NAT gateway (or the shared one).
resource "aws_route_table" "private" {
  for_each = toset(local.azs)

  vpc_id = data.aws_vpc.cluster.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this[var.nat_gateway_per_az ? each.key : local.nat_azs[0]].id
  }

  tags = {
    Name = "${local.name}-private-${each.key}"
  }
}

resource "aws_route_table_association" "private" {
  for_each = aws_subnet.private

  subnet_id      = each.value.id
  route_table_id = aws_route_table.private[each.key].id
}

# Image layers come from S3: a free gateway endpoint keeps ECR pulls off the NAT gateways' per-GB
# processing charge.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = data.aws_vpc.cluster.id
  service_name      = "com.amazonaws.${var.aws_region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for rt in aws_route_table.private : rt.id]

  tags = {
    Name = "${local.name}-s3"
  }
}
