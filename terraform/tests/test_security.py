"""Identity and data protection: OIDC trusts with aud and sub, bounded roles, no administrator
policy, state and database hardening, no secret in outputs."""

import re

import pytest

from conftest import text_of


def web_identity_statements(layer):
    for name, doc in layer.data("aws_iam_policy_document").items():
        for statement in doc.get("statement", []):
            if "sts:AssumeRoleWithWebIdentity" in statement.get("actions", []):
                yield name, statement


def conditions(statement):
    return {c["variable"]: (c["test"], c["values"]) for c in statement.get("condition", [])}


@pytest.mark.parametrize("layer", ["bootstrap", "app"])
def test_web_identity_trusts_pin_audience_and_subject(layers, layer):
    statements = list(web_identity_statements(layers[layer]))
    assert statements, f"{layer}: no OIDC trust policies found"
    for name, statement in statements:
        cond = conditions(statement)
        aud = [v for k, v in cond.items() if k.endswith(":aud")]
        sub = [v for k, v in cond.items() if k.endswith(":sub")]
        assert aud == [("StringEquals", ["sts.amazonaws.com"])], f"{layer}: {name} lacks an exact aud condition"
        assert len(sub) == 1 and sub[0][0] == "StringEquals", f"{layer}: {name} lacks an exact sub condition"


def test_github_subjects_name_this_repository_and_a_branch_pr_or_environment(layers):
    roles = layers["bootstrap"].locals()["ci_roles"]
    subjects = {name: role["subjects"] for name, role in roles.items()}
    local_values = layers["bootstrap"].locals()
    for name, refs in subjects.items():
        for ref in refs:
            value = local_values[ref.strip("${}").removeprefix("local.")]
            assert value.startswith("repo:${var.github_repository}:"), f"{name}: {value}"
            assert "*" not in value, f"{name}: wildcard subject {value}"
    assert subjects["apply"] == ["${local.sub_environment}"], "apply only from the protected environment"
    assert subjects["release"] == ["${local.sub_main}"]
    assert set(subjects["plan"]) == {"${local.sub_pr}", "${local.sub_main}"}


def test_irsa_subjects_name_one_service_account_each(layers):
    app = layers["app"]
    irsa = app.locals()["irsa"]
    assert irsa["adot-collector"] == {"namespace": "${var.app_namespace}", "service_account": "adot-collector"}
    assert app.variables()["app_namespace"]["default"] == "counter"
    trust = app.data("aws_iam_policy_document")["irsa_trust"]
    sub = conditions(trust["statement"][0])["${local.oidc_issuer}:sub"]
    assert sub == ("StringEquals", ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"])


def test_no_administrator_access_anywhere(layers, modules):
    for layer in [*layers.values(), *modules.values()]:
        for path in layer.dir.glob("*.tf"):
            assert "AdministratorAccess" not in path.read_text(), f"{layer.name}/{path.name}"


def test_plan_role_is_read_only(layers):
    bootstrap = layers["bootstrap"]
    attachment = bootstrap.resource("aws_iam_role_policy_attachment", "plan_read_only")
    assert attachment["policy_arn"].endswith(":iam::aws:policy/ReadOnlyAccess")
    writes = [
        (s["sid"], a)
        for s in bootstrap.data("aws_iam_policy_document")["plan"]["statement"]
        for a in s["actions"]
        if re.search(r":(Put|Delete|Create|Update)", a)
    ]
    assert writes == [
        ("LockFilesOnly", "s3:PutObject"),
        ("LockFilesOnly", "s3:DeleteObject"),
        ("SavePlans", "s3:PutObject"),
    ]
    statements = {s["sid"]: s for s in bootstrap.data("aws_iam_policy_document")["plan"]["statement"]}
    assert statements["LockFilesOnly"]["resources"] == ["${aws_s3_bucket.state.arn}/*.tflock"]
    # Saved plans only under plans/ (the apply job checks the plan's SHA-256 from its own run).
    assert statements["SavePlans"]["resources"] == ["${aws_s3_bucket.state.arn}/plans/*"]


def test_apply_role_iam_writes_require_the_boundary(layers):
    doc = layers["bootstrap"].data("aws_iam_policy_document")["apply_iam"]
    statements = {s["sid"]: s for s in doc["statement"]}
    create = statements["CreateBoundedRoles"]
    assert "iam:CreateRole" in create["actions"]
    assert conditions(create)["iam:PermissionsBoundary"] == ("StringEquals", ["${aws_iam_policy.workload_boundary.arn}"])
    for sid, statement in statements.items():
        if statement.get("effect") == "Deny" or sid in ("ReadIam", "ServiceLinkedRoles"):
            continue
        for resource in statement["resources"]:
            assert "${local.workload_path}" in resource or "oidc-provider/oidc.eks." in resource, f"{sid}: {resource}"
    assert statements["NeverDropTheBoundary"]["effect"] == "Deny"


@pytest.mark.parametrize("layer", ["infra", "app"])
def test_every_workload_role_is_bounded_and_under_the_project_path(layers, layer):
    roles = layers[layer].resources("aws_iam_role")
    assert roles
    for name, role in roles.items():
        assert role.get("permissions_boundary"), f"{layer}: aws_iam_role.{name} has no permissions boundary"
        assert role.get("path"), f"{layer}: aws_iam_role.{name} is not under the project path"


def test_state_bucket_is_versioned_encrypted_private_and_tls_only(layers, modules):
    """The state bucket goes through the hardening module (test_buckets.py holds the module to
    versioning, the public access block and the TLS rules) with the state key and ACLs off."""
    b = layers["bootstrap"]
    call = b.module_calls()["state_bucket"]
    assert call["bucket"] == "${aws_s3_bucket.state.id}"
    assert call["kms_key_arn"] == "${aws_kms_key.state.arn}"
    assert call["object_ownership"] == "BucketOwnerEnforced"
    assert b.resource("aws_kms_key", "state")["enable_key_rotation"] is True
    assert b.resource("aws_s3_bucket", "state")["lifecycle"][0]["prevent_destroy"] is True
    hardening = modules[call["source"].removeprefix("../")]
    sse = hardening.resource("aws_s3_bucket_server_side_encryption_configuration", "this")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == '${var.kms_key_arn == null ? "AES256" : "aws:kms"}'
    assert sse["apply_server_side_encryption_by_default"][0]["kms_master_key_id"] == "${var.kms_key_arn}"


def test_database_is_encrypted_tls_only_backed_up_and_protected(layers):
    infra = layers["infra"]
    db = infra.resource("aws_db_instance", "this")
    assert db["engine"] == "postgres" and infra.variables()["db_engine_version"]["default"] == "16"
    assert infra.variables()["db_instance_class"]["default"] == "db.t4g.micro"
    assert db["storage_type"] == "gp3" and db["storage_encrypted"] is True
    assert db["publicly_accessible"] is False
    assert db["skip_final_snapshot"] is False and db["final_snapshot_identifier"]
    assert db["deletion_protection"] == "${var.db_deletion_protection && !var.teardown}"
    assert infra.variables()["teardown"]["default"] is False
    assert infra.variables()["db_deletion_protection"]["default"] is True
    assert db["multi_az"] == "${var.db_multi_az}"
    assert infra.variables()["db_backup_retention_days"]["default"] >= 7
    assert db["manage_master_user_password"] is True, "RDS owns the password in Secrets Manager"
    assert "password" not in db, "no password may pass through Terraform"
    params = {p["name"]: p["value"] for p in infra.resource("aws_db_parameter_group", "this")["parameter"]}
    assert params["rds.force_ssl"] == "1"
    ingress = infra.resource("aws_vpc_security_group_ingress_rule", "db_from_nodes")
    assert ingress["referenced_security_group_id"] == "${aws_security_group.node.id}"
    assert ingress["from_port"] == ingress["to_port"] == 5432


def test_no_output_carries_a_secret_value(layers):
    for layer in layers.values():
        for name, output in layer.outputs().items():
            text = text_of(output["value"])
            assert "random_password" not in text and "secret_string" not in text, f"{layer.name}: output {name}"
            assert not re.search(r"\bpassword\b", text), f"{layer.name}: output {name}"


def test_node_groups_are_graviton_al2023_one_per_az(layers):
    """One group per AZ: a group spanning zones lets the Cluster Autoscaler add a node in any zone,
    so a pod pending on a hard zone spread may never get one in the zone it needs (issue 12 #11)."""
    infra = layers["infra"]
    group = infra.resource("aws_eks_node_group", "this")
    assert group["ami_type"] == "AL2023_ARM_64_STANDARD"
    assert all(t.startswith("t4g.") for t in infra.variables()["node_instance_types"]["default"])
    assert group["for_each"] == "${aws_subnet.private}", "one node group per private subnet (AZ)"
    assert group["subnet_ids"] == ["${each.value.id}"], "each group lives in exactly one AZ"
    assert "${each.key}" in group["node_group_name"]
    assert infra.variables()["availability_zone_count"]["default"] >= 2
    assert infra.variables()["node_group_scaling"]["default"]["min_size"] >= 1
    autoscaler = layers["app"].resource("helm_release", "cluster_autoscaler")
    assert "balance-similar-node-groups" in text_of(autoscaler["values"])
    template = infra.resource("aws_launch_template", "node")
    assert template["metadata_options"][0]["http_tokens"] == "required"


def test_ecr_is_immutable_scanned_and_expiring(layers):
    infra = layers["infra"]
    repo = infra.resource("aws_ecr_repository", "origin")
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True
    assert infra.resource("aws_ecr_lifecycle_policy", "origin")["repository"] == "${aws_ecr_repository.origin.name}"


def test_cluster_is_read_never_created(layers):
    infra = layers["infra"]
    assert "this" in infra.data("aws_eks_cluster")
    assert not infra.resources("aws_eks_cluster"), "an SCP forbids eks:CreateCluster: the cluster is a data source"
    for layer in layers.values():
        assert not layer.data("aws_lb"), f"{layer.name}: no data source may wait on a load balancer created later"
