# PostgreSQL for the counter: one row, many small transactions. Encrypted, TLS-only, backed up,
# protected from deletion, reachable only from the nodes. The master password is generated,
# stored and rotated by RDS in Secrets Manager: it never appears in Terraform state, outputs or Git.

locals {
  db_identifier = "${local.name}-postgres"
}

resource "aws_db_subnet_group" "this" {
  name        = local.db_identifier
  description = "Private subnets of ${local.name}"
  subnet_ids  = [for s in aws_subnet.private : s.id]
}

resource "aws_security_group" "db" {
  name        = "${local.name}-db"
  description = "PostgreSQL for Counter Service: reachable from the nodes and their pods only"
  vpc_id      = data.aws_vpc.cluster.id

  tags = {
    Name = "${local.name}-db"
  }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_nodes" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the EKS nodes and pods"
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "this" {
  name        = "${local.db_identifier}-${var.db_engine_version}"
  family      = "postgres${var.db_engine_version}"
  description = "TLS-only PostgreSQL for ${local.name}"

  # Refuse plaintext connections outright, whatever a client's sslmode says.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.2"
  }

  # The origin's statements take well under a millisecond; anything slower than this is news.
  parameter {
    name  = "log_min_duration_statement"
    value = "250"
  }

  # A client that dies mid-transaction must not hold the counter row's lock.
  parameter {
    name  = "idle_in_transaction_session_timeout"
    value = "30000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name                 = "${local.name}-rds-monitoring"
  path                 = local.iam_path
  permissions_boundary = local.permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.rds_monitoring_trust.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# Created here rather than by RDS so they get a retention (RDS would create them without one).
resource "aws_cloudwatch_log_group" "db" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with a service key; the database logs hold no credentials (passwords are never logged by PostgreSQL here).
  #checkov:skip=CKV_AWS_338:30 days covers incident analysis; a year of PostgreSQL logs is cost without a consumer.
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${local.db_identifier}/${each.key}"
  retention_in_days = var.log_retention_days
}

# The final snapshot's name must be new on every teardown: a second destroy in the same account
# would otherwise fail on the first one's snapshot, which outlives the instance.
resource "random_id" "final_snapshot" {
  byte_length = 4
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_293:On by default (db_deletion_protection true, teardown false); checkov cannot evaluate the expression, terraform/tests asserts it.
  #checkov:skip=CKV_AWS_353:Performance Insights is not needed for a one-row workload; Enhanced Monitoring and the slow-statement log cover it.
  #checkov:skip=CKV_AWS_354:Performance Insights is not enabled (see CKV_AWS_353).
  identifier     = local.db_identifier
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name                             = var.db_name
  username                            = var.db_master_username
  manage_master_user_password         = true
  iam_database_authentication_enabled = true

  storage_type          = "gp3"
  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_encrypted     = true

  multi_az               = var.db_multi_az
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  port                   = 5432
  parameter_group_name   = aws_db_parameter_group.this.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.db_deletion_protection && !var.teardown
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.db_identifier}-final-${random_id.final_snapshot.hex}"

  auto_minor_version_upgrade      = true
  allow_major_version_upgrade     = false
  monitoring_interval             = 60
  monitoring_role_arn             = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]

  depends_on = [aws_cloudwatch_log_group.db]
}
