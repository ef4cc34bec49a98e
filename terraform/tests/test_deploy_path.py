"""Issue 12 and 13 on the Terraform side: each test names the defect it guards and fails on the
form that had it (state writes refused, no storage driver, NetworkPolicies not enforced, teardown
blocked, alerts going nowhere, the origin signing in as the master user)."""

import fnmatch
import json
import re

import pytest

from conftest import REPO, TERRAFORM

# --- a small evaluator for the condition operators these policies use --------------------------
# IAM semantics (AWS IAM User Guide, "IAM JSON policy elements: Condition operators"): a key absent
# from the request makes every operator false, except `…IfExists` (true when absent) and `Null`
# (`true` matches an absent key, `false` a present one). All conditions of a statement must match.


def condition_matches(test, request_value, values):
    if test == "Null":
        return (request_value is None) == (values == ["true"])
    if test.endswith("IfExists"):
        if request_value is None:
            return True
        test = test.removesuffix("IfExists")
    if request_value is None:
        return False
    if test == "Bool":
        return request_value in values
    if test == "NumericLessThan":
        return float(request_value) < float(values[0])
    if test in ("StringEquals", "ArnEquals"):
        return request_value in values
    if test in ("StringNotEquals", "ArnNotEquals"):
        return request_value not in values
    raise AssertionError(f"operator {test} is not modelled by this test")


def denied(policy, action, resource, context):
    for statement in policy["statement"]:
        if statement.get("effect") != "Deny":
            continue
        if not any(fnmatch.fnmatchcase(action, a) for a in statement["actions"]):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in statement["resources"]):
            continue
        if all(condition_matches(c["test"], context.get(c["variable"]), c["values"])
               for c in statement.get("condition", [])):
            return statement["sid"]
    return None


STATE_KEY = "${aws_kms_key.state.arn}"
OBJECT = "${aws_s3_bucket.state.arn}/infra/terraform.tfstate"
SECURE = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


@pytest.mark.parametrize(
    "headers,refused",
    [
        # What the S3 backend sends without `encrypt = true`: no SSE header; the bucket default
        # (SSE-KMS with the state key) applies. The old StringNotEqualsIfExists denied exactly this.
        ({}, False),
        # aws:kms without a key id means the AWS-managed aws/s3 key: not the state key.
        ({"s3:x-amz-server-side-encryption": "aws:kms"}, True),
        ({"s3:x-amz-server-side-encryption": "aws:kms",
          "s3:x-amz-server-side-encryption-aws-kms-key-id": STATE_KEY}, False),
        ({"s3:x-amz-server-side-encryption": "AES256"}, True),
        ({"s3:x-amz-server-side-encryption": "aws:kms",
          "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:partition:kms:region:account:key/other"}, True),
        # The transport rules every bucket gets from terraform/modules/s3-bucket-hardening.
        ({"aws:SecureTransport": "false"}, True),
        ({"s3:TlsVersion": "1.1"}, True),
    ],
    ids=["no-header", "kms-default-key", "kms-state-key", "sse-s3", "kms-other-key", "plain-http", "tls-1.1"],
)
def test_state_bucket_admits_backend_writes_and_refuses_other_encryption(layers, modules, headers, refused):
    """Issue 12 #1: no state could be written (the policy denied PutObject without an SSE header).
    The policy as applied: the hardening module's transport rules, then the layer's own statements."""
    call = layers["bootstrap"].module_calls()["state_bucket"]
    module = modules[call["source"].removeprefix("../")]
    transport = json.loads(json.dumps(module.data("aws_iam_policy_document")["transport"]["statement"])
                           .replace("${var.bucket_arn}", call["bucket_arn"]))
    own = layers["bootstrap"].data("aws_iam_policy_document")["state_bucket"]["statement"]
    assert call["policy_documents"] == ["${data.aws_iam_policy_document.state_bucket.json}"]
    policy = {"statement": transport + own}
    verdict = denied(policy, "s3:PutObject", OBJECT, {**SECURE, **headers})
    assert bool(verdict) is refused, f"{headers}: denied by {verdict}" if verdict else f"{headers}: admitted"


def test_backends_and_workflows_agree_on_encryption(layers):
    """Every backend relies on the bucket default: no layer, workflow or script asks for SSE itself,
    so a single one sending `encrypt`/`kms_key_id` cannot diverge from the rest."""
    for layer in layers.values():
        backend = layer.terraform_block()["backend"][0]["s3"]
        assert "encrypt" not in backend and "kms_key_id" not in backend, layer.name
    sources = list((REPO / ".github" / "workflows").glob("*.yml")) + list((REPO / "scripts").glob("*.sh"))
    for path in sources:
        text = path.read_text()
        assert not re.search(r"backend-config=\"?(encrypt|kms_key_id|sse)", text), f"{path.name} sends SSE settings"


def test_vpc_cni_enforces_network_policies(layers):
    """Issue 12 #6: without enableNetworkPolicy the manifests' NetworkPolicies are accepted, not enforced."""
    infra = layers["infra"]
    assert "vpc-cni" in infra.locals()["addons_before_nodes"]
    config = infra.locals()["addon_configuration"]["vpc-cni"]
    assert re.fullmatch(r'\$\{jsonencode\(\{\s*enableNetworkPolicy\s*=\s*"true"\s*\}\)\}', config), config
    addon = infra.resource("aws_eks_addon", "before_nodes")
    assert addon["configuration_values"] == "${lookup(local.addon_configuration, each.key, null)}"


def test_ebs_csi_driver_is_installed_with_its_pod_identity_role(layers):
    """Issue 12 #5: EKS >= 1.30 has no storage driver by default; Prometheus' PVC never binds."""
    infra = layers["infra"]
    assert "aws-ebs-csi-driver" in infra.locals()["addons_after_nodes"]
    binding = infra.locals()["addon_pod_identity"]["aws-ebs-csi-driver"]
    assert binding["service_account"] == "ebs-csi-controller-sa"
    assert binding["role_arn"] == '${aws_iam_role.pod_identity["ebs-csi-driver"].arn}'
    assert infra.locals()["addon_roles"]["ebs-csi-driver"].endswith(":iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy")
    addon = infra.resource("aws_eks_addon", "after_nodes")
    association = addon["dynamic"][0]["pod_identity_association"]
    assert association["for_each"] == "${contains(keys(local.addon_pod_identity), each.key) ? [local.addon_pod_identity[each.key]] : []}"


def test_every_log_group_has_a_retention(layers):
    """Issue 12 #19: log groups created without a retention keep logs (and cost) forever."""
    groups = [(layer.name, name, body) for layer in layers.values()
              for name, body in layer.resources("aws_cloudwatch_log_group").items()]
    assert {name for _, name, _ in groups} >= {"db", "container_insights", "waf", "control_plane"}
    for layer, name, body in groups:
        assert body.get("retention_in_days"), f"{layer}: aws_cloudwatch_log_group.{name} has no retention"
    # The add-on would create these itself (without retention) if it ran first.
    after = layers["infra"].resource("aws_eks_addon", "after_nodes")
    assert "${aws_cloudwatch_log_group.container_insights}" in after["depends_on"]
    # EKS made the control-plane group before Terraform ran: it is adopted (import), not created.
    imports = [b for b in layers["infra"].blocks("import")]
    assert {"to": "${aws_cloudwatch_log_group.control_plane}", "id": "/aws/eks/${var.cluster_name}/cluster"} in imports


def test_waf_rate_limit_floor_is_what_aws_accepts(layers):
    """Issue 12 #19: AWS WAF accepts rate limits from 10 per evaluation window (since August 2024)."""
    validation = layers["app"].variables()["waf_rate_limit"]["validation"][0]["condition"]
    assert ">= 10" in validation and ">= 100" not in validation


# --- teardown ------------------------------------------------------------------------------------


def test_teardown_switch_removes_every_protection_that_blocks_destroy(layers):
    """Issue 12 #14: destroy failed on a non-empty ECR repository, a versioned log bucket, a fixed
    final snapshot name and the secret's recovery window. One variable per layer, set only by
    scripts/teardown.sh, turns each off; the defaults keep every protection."""
    infra, app = layers["infra"], layers["app"]
    for layer in (infra, app):
        assert layer.variables()["teardown"]["default"] is False
    assert infra.resource("aws_ecr_repository", "origin")["force_delete"] == "${var.teardown}"
    assert app.resource("aws_s3_bucket", "logs")["force_destroy"] == "${var.teardown}"
    secret = app.resource("aws_secretsmanager_secret", "origin_verify")
    assert secret["recovery_window_in_days"] == "${var.teardown ? 0 : 7}"
    assert app.resource("aws_lb", "this")["enable_deletion_protection"] == "${var.alb_deletion_protection && !var.teardown}"
    db = infra.resource("aws_db_instance", "this")
    assert db["deletion_protection"] == "${var.db_deletion_protection && !var.teardown}"
    # A new name per deployment: a second teardown in the account collided with the first snapshot.
    assert "${random_id.final_snapshot.hex}" in db["final_snapshot_identifier"]
    assert "db_final_snapshot_identifier" in infra.outputs()


# --- alerts --------------------------------------------------------------------------------------


def test_alerts_topic_alarms_and_probe_share_us_east_1(layers):
    """Issue 12 #7 and issue 19 #14: alerts need a destination, and failures before the origin
    need an alarm. CloudFront and Route 53 metrics exist only in us-east-1, an alarm notifies a
    topic of its own region only: topic, key and alarms are all in us-east-1."""
    app = layers["app"]
    assert app.outputs()["alerts_topic_arn"]["value"] == "${aws_sns_topic.alerts.arn}"
    assert app.outputs()["alerts_topic_region"]["value"] == "us-east-1"
    for rtype, name in [("aws_sns_topic", "alerts"), ("aws_kms_key", "alerts"), ("aws_sns_topic_policy", "alerts"),
                        ("aws_cloudwatch_metric_alarm", "edge_5xx"), ("aws_cloudwatch_metric_alarm", "public_url")]:
        assert app.resource(rtype, name)["provider"] == "${aws.us_east_1}", f"{rtype}.{name}"
    assert app.resource("aws_sns_topic", "alerts")["kms_master_key_id"] == "${aws_kms_key.alerts.arn}"
    key_policy = app.data("aws_iam_policy_document")["alerts_key"]
    cloudwatch = next(s for s in key_policy["statement"] if s["sid"] == "CloudWatchAlarmsPublish")
    assert cloudwatch["principals"][0]["identifiers"] == ["cloudwatch.amazonaws.com"]

    edge = app.resource("aws_cloudwatch_metric_alarm", "edge_5xx")
    assert edge["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"]
    metrics = {q["id"]: q for q in edge["metric_query"]}
    assert metrics["errors"]["metric"][0]["metric_name"] == "5xxErrorRate"
    assert metrics["errors"]["metric"][0]["dimensions"]["Region"] == "Global"
    assert "requests >=" in metrics["rate"]["expression"], "a minimum of traffic before a 5xx rate pages"
    monitoring = app.resource("aws_cloudfront_monitoring_subscription", "this")
    status = monitoring["monitoring_subscription"][0]["realtime_metrics_subscription_config"][0]
    assert status["realtime_metrics_subscription_status"] == "Enabled"

    # Issue 19 #15: a dead Alertmanager is noticed by the silence of its Watchdog heartbeat.
    heartbeat = app.resource("aws_cloudwatch_metric_alarm", "heartbeat")
    assert heartbeat["provider"] == "${aws.us_east_1}"
    assert heartbeat["dimensions"] == {"TopicName": "${aws_sns_topic.heartbeat.name}"}
    assert heartbeat["metric_name"] == "NumberOfMessagesPublished" and heartbeat["treat_missing_data"] == "breaching"
    assert heartbeat["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"]
    assert app.outputs()["heartbeat_topic_arn"]["value"] == "${aws_sns_topic.heartbeat.arn}"

    probe = app.resource("aws_route53_health_check", "public_url")
    assert probe["type"] == "HTTPS" and probe["resource_path"] == "${var.probe_path}"
    assert "aws_cloudfront_distribution.this.domain_name" in probe["fqdn"], "the probe goes through CloudFront"
    down = app.resource("aws_cloudwatch_metric_alarm", "public_url")
    assert down["metric_name"] == "HealthCheckStatus" and down["namespace"] == "AWS/Route53"
    assert down["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"]
    assert down["treat_missing_data"] == "breaching", "a probe that stops reporting is down, not fine"


# --- Pod Identity (issue 13 and the monitoring roles) -------------------------------------------

# TEAM.md's contract: who runs as which service account.
EXPECTED_ASSOCIATIONS = {
    "origin": ("${var.app_namespace}", "counter-origin"),
    "migrate": ("${var.app_namespace}", "counter-migrate"),
    "alertmanager": ("monitoring", "kube-prometheus-stack-alertmanager"),
    "grafana": ("monitoring", "kube-prometheus-stack-grafana"),
}


def policy_statements(layer, name):
    return layer.data("aws_iam_policy_document")[name]["statement"]


def test_pod_identity_roles_bind_exactly_the_contract_service_accounts(layers):
    app = layers["app"]
    bindings = {k: (v["namespace"], v["service_account"]) for k, v in app.locals()["pod_identity"].items()}
    assert bindings == EXPECTED_ASSOCIATIONS
    association = app.resource("aws_eks_pod_identity_association", "this")
    assert association["for_each"] == "${local.pod_identity}"
    assert association["role_arn"] == "${aws_iam_role.pod_identity[each.key].arn}"
    trust = policy_statements(app, "pod_identity_trust")[0]
    assert trust["principals"][0]["identifiers"] == ["pods.eks.amazonaws.com"]
    keys = {c["variable"]: c for c in trust["condition"]}
    assert keys["aws:SourceArn"]["values"] == ["${data.aws_eks_cluster.this.arn}"], "only this cluster's associations"


def test_origin_may_only_connect_as_counter_app(layers):
    """Issue 13: the origin signs in with IAM as the least-privilege role, never as the master user."""
    app = layers["app"]
    statements = policy_statements(app, "origin")
    assert [(s["actions"], s["resources"]) for s in statements] == [(["rds-db:connect"], ["${local.db_user_arn}"])]
    arn = app.locals()["db_user_arn"]
    assert arn == ("arn:${local.partition}:rds-db:${var.aws_region}:${local.account_id}:dbuser:"
                   "${local.infra.db_resource_id}/${var.db_app_role}")
    assert app.variables()["db_app_role"]["default"] == "counter_app"
    assert layers["infra"].outputs()["db_resource_id"]["value"] == "${aws_db_instance.this.resource_id}"
    assert layers["infra"].resource("aws_db_instance", "this")["iam_database_authentication_enabled"] is True


def test_migration_may_only_read_the_master_secret(layers):
    app = layers["app"]
    statements = policy_statements(app, "migrate")
    assert [(s["actions"], s["resources"]) for s in statements] == [
        (["secretsmanager:GetSecretValue"], ["${local.infra.db_master_user_secret_arn}"])
    ]
    # RDS encrypts the managed secret with aws/secretsmanager unless told otherwise: then the
    # migration needs no KMS grant. A customer-managed key here would need kms:Decrypt on it.
    assert "master_user_secret_kms_key_id" not in layers["infra"].resource("aws_db_instance", "this")


def test_alertmanager_and_grafana_roles_are_scoped(layers):
    app = layers["app"]
    alertmanager = {s["sid"]: s for s in policy_statements(app, "alertmanager")}
    assert alertmanager["PublishAlerts"]["actions"] == ["sns:Publish"]
    assert alertmanager["PublishAlerts"]["resources"] == ["${aws_sns_topic.alerts.arn}", "${aws_sns_topic.heartbeat.arn}"]
    assert alertmanager["EncryptForTheTopic"]["resources"] == ["${aws_kms_key.alerts.arn}"]
    grafana = [a for s in policy_statements(app, "grafana") for a in s["actions"]]
    writes = [a for a in grafana if not re.search(r":(Describe|Get|List)", a)]
    assert not writes, f"Grafana's CloudWatch role must be read-only: {writes}"


def boundary_allows(boundary_actions, action):
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in boundary_actions)


def test_the_workload_boundary_admits_what_the_workload_roles_are_granted(layers):
    """A role whose policy exceeds the permissions boundary is silently capped: the action fails at
    run time with AccessDenied. Every action granted to a workload role must be inside it."""
    boundary = [a for s in policy_statements(layers["bootstrap"], "workload_boundary") for a in s["actions"]]
    for name in ("origin", "migrate", "alertmanager", "grafana"):
        for statement in policy_statements(layers["app"], name):
            for action in statement["actions"]:
                assert boundary_allows(boundary, action), f"{name}: {action} is outside the workload boundary"


def test_no_database_password_reaches_the_cluster_or_terraform(layers):
    """Issue 13: the bootstrap copied the master password into a Kubernetes Secret, which broke on the
    first rotation; nothing outputs or copies it any more."""
    bootstrap = (REPO / ".github" / "workflows" / "bootstrap.yml").read_text()
    assert "get-secret-value" not in bootstrap, "the bootstrap must not read the master secret"
    assert not re.search(r"\.password\b", bootstrap)
    assert "db_master_user_secret_arn" in layers["infra"].outputs()
    infra_text = "".join(p.read_text() for p in (TERRAFORM / "infra").glob("*.tf"))
    assert "master_user_secret[0].secret_arn" in infra_text and "secret_string" not in infra_text


# The KMS actions the EBS CSI driver's documented KMS policy grants for encrypted volumes
# (kubernetes-sigs/aws-ebs-csi-driver docs/install.md, "KMS key policy"; the EKS user guide's
# "Store Kubernetes volumes with Amazon EBS"). EC2 calls KMS on the driver's behalf.
EBS_CSI_KMS_ACTIONS = (
    "kms:CreateGrant",
    "kms:ListGrants",
    "kms:RevokeGrant",
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)


def test_the_workload_boundary_admits_encrypted_ebs_volumes(layers):
    """W2: with only kms:Decrypt/GenerateDataKey in the boundary, the driver's CreateVolume of an
    encrypted gp3 volume is refused and the PVC never binds."""
    statements = policy_statements(layers["bootstrap"], "workload_boundary")
    boundary = [a for s in statements for a in s["actions"]]
    missing = [a for a in EBS_CSI_KMS_ACTIONS if not boundary_allows(boundary, a)]
    assert not missing, f"the workload boundary refuses the EBS CSI driver's KMS calls: {missing}"
    grants = [s for s in statements if "kms:CreateGrant" in s["actions"]]
    assert all(s["condition"][0]["variable"] == "kms:GrantIsForAWSResource" for s in grants), grants


def test_cloudwatch_observability_runs_only_what_is_used(layers):
    """S3: the add-on's default turns on Application Signals, which needs X-Ray rights the role lacks
    (the origin's traces go through ADOT), and on AL2023 nodes the dataplane and host log groups stay
    empty: neither is configured or pre-created."""
    infra = layers["infra"]
    config = infra.locals()["addon_configuration"]["amazon-cloudwatch-observability"]
    assert config.startswith("${jsonencode(") and "enhanced_container_insights = true" in config, config
    assert "application_signals" not in config and "traces" not in config, config
    groups = infra.resource("aws_cloudwatch_log_group", "container_insights")["for_each"]
    assert groups == '${toset(["application", "performance"])}', groups
    assert "AWSXrayWriteOnlyAccess" not in json.dumps(infra.locals()["addon_roles"])
