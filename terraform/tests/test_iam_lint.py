"""Every identity policy Terraform writes is linted with parliament (duo-labs, PyPI): unknown
actions, resources of the wrong type for an action, malformed conditions, privilege escalation
patterns. The HCL documents are rendered to JSON with example values for the interpolated ARNs
(account 111122223333, AWS's documentation account). Each remaining finding is listed below with
the reason it stands; a new finding fails until it is fixed or reasoned here.

Trust and resource policies (principals) are out of parliament's scope and are asserted by
test_security.py / test_deploy_path.py instead."""

import json

import pytest

try:
    from parliament import analyze_policy_string
except ImportError:  # pragma: no cover - the suite installs it (requirements-tools.txt)
    analyze_policy_string = None

ACCOUNT = "111122223333"
# Whole-expression values: what each interpolated resource is, as an ARN of the right type.
ARNS = {
    "${aws_s3_bucket.state.arn}": "arn:aws:s3:::counter-service-tfstate",
    "${aws_kms_key.state.arn}": f"arn:aws:kms:eu-west-2:{ACCOUNT}:key/0a1b2c3d-0000-0000-0000-000000000000",
    "${aws_kms_key.alerts.arn}": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0a1b2c3d-0000-0000-0000-000000000001",
    "${aws_sns_topic.alerts.arn}": f"arn:aws:sns:us-east-1:{ACCOUNT}:counter-service-alerts",
    "${aws_sns_topic.heartbeat.arn}": f"arn:aws:sns:us-east-1:{ACCOUNT}:counter-service-alertmanager-heartbeat",
    "${aws_lb_target_group.origin.arn}": f"arn:aws:elasticloadbalancing:eu-west-2:{ACCOUNT}:targetgroup/counter-origin/0123456789abcdef",
    "${local.ecr_repository_arn}": f"arn:aws:ecr:eu-west-2:{ACCOUNT}:repository/counter-origin",
    "${local.db_user_arn}": f"arn:aws:rds-db:eu-west-2:{ACCOUNT}:dbuser:db-ABCDEFGHIJKL/counter_app",
    "${local.infra.db_master_user_secret_arn}": f"arn:aws:secretsmanager:eu-west-2:{ACCOUNT}:secret:rds!db-0123-AbCdEf",
    "${aws_iam_policy.workload_boundary.arn}": f"arn:aws:iam::{ACCOUNT}:policy/counter-service/counter-service-workload-boundary",
}
# Pieces inside a string.
PIECES = {
    "${local.partition}": "aws",
    "${local.account_id}": ACCOUNT,
    "${var.aws_region}": "eu-west-2",
    "${var.project}": "counter-service",
    "${local.workload_path}": "/counter-service/",
    "${local.infra.cluster_name}": "counter-service",
    "${local.infra.node_security_group_id}": "sg-0123456789abcdef0",
    "${local.infra.cluster_security_group_id}": "sg-0123456789abcdef1",
    "${local.infra.vpc_id}": "vpc-0123456789abcdef0",
}

# (layer, document) of every identity policy; trust/resource policies are excluded on purpose.
IDENTITY_POLICIES = [
    ("bootstrap", "plan"), ("bootstrap", "apply_iam"), ("bootstrap", "release"), ("bootstrap", "workload_boundary"),
    ("app", "aws_load_balancer_controller"), ("app", "cluster_autoscaler"), ("app", "origin"), ("app", "migrate"),
    ("app", "alertmanager"), ("app", "grafana"),
]

# Findings that stand, with the reason (issue code, document) -> why.
REASONED = {
    ("CREDENTIALS_EXPOSURE", "workload_boundary"): "the boundary caps, it grants nothing: ecr:GetAuthorizationToken (node image pulls) and sts:AssumeRole fall under it",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "workload_boundary"): "the boundary caps, it grants nothing; the service wildcards (ecr:*, eks:*, …) include their policy actions, no role's own policy grants them",
    ("CREDENTIALS_EXPOSURE", "origin"): "rds-db:connect is how IAM database authentication works: the token it signs is the credential, for one user (counter_app) on one instance",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "origin"): "parliament files rds-db:connect under permissions management; it is scoped to dbuser:<instance resource id>/counter_app only",
    ("RESOURCE_STAR", "workload_boundary"): "a permissions boundary is a ceiling, not a grant; each role's own policy scopes resources",
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "apply_iam"): "the apply role manages roles under /<project>/ only, each forced to carry the workload boundary (CreateBoundedRoles), and may never drop a boundary",
    ("PRIVILEGE_ESCALATION", "apply_iam"): "the escalation parliament sees (CreateRole/AttachRolePolicy/PassRole) is capped by the mandatory workload boundary, which grants no IAM; test_security.py asserts the condition",
    ("RESOURCE_STAR", "apply_iam"): "iam:Get*/List* are reads without useful resource scoping; iam:CreateServiceLinkedRole is limited by iam:AWSServiceName",
    ("RESOURCE_STAR", "grafana"): "CloudWatch metric reads, ec2:DescribeRegions and tag:GetResources have no resource-level permissions",
    ("RESOURCE_STAR", "aws_load_balancer_controller"): "ELB/EC2 Describe* calls have no resource-level permissions; every write is scoped",
    ("RESOURCE_STAR", "cluster_autoscaler"): "Auto Scaling and EC2 Describe* calls have no resource-level permissions; writes need the cluster's owned tag",
    ("MISMATCHED_TYPE_BUT_USABLE", "apply_iam"): "iam:PermissionsBoundary is a String key whose value is the policy ARN; AWS's own examples compare it with StringEquals",
    ("CREDENTIALS_EXPOSURE", "release"): "ecr:GetAuthorizationToken is how a registry push logs in; the role can push to one repository only",
}


def render(value):
    if isinstance(value, str):
        for piece, example in [*ARNS.items(), *PIECES.items()]:
            value = value.replace(piece, example)
        assert "${" not in value, f"no example value for {value!r}: add it to ARNS or PIECES"
        return value
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def to_json(document):
    statements = []
    for s in document["statement"]:
        statement = {"Effect": s.get("effect", "Allow"), "Action": render(s["actions"]), "Resource": render(s["resources"])}
        if "sid" in s:
            statement["Sid"] = s["sid"]
        conditions = {}
        for c in s.get("condition", []):
            values = render(c["values"])
            # One value as a scalar, which IAM reads the same: parliament's Bool auditor fails on a list.
            conditions.setdefault(c["test"], {})[render(c["variable"])] = values[0] if len(values) == 1 else values
        if conditions:
            statement["Condition"] = conditions
        statements.append(statement)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@pytest.mark.parametrize("layer,name", IDENTITY_POLICIES, ids=lambda v: str(v))
def test_identity_policies_pass_parliament(layers, layer, name):
    assert analyze_policy_string is not None, "parliament is missing from .tools/venv (requirements-tools.txt)"
    document = layers[layer].data("aws_iam_policy_document")[name]
    policy = analyze_policy_string(to_json(document), include_community_auditors=True)
    findings = sorted({(f.issue, name) for f in policy.findings})
    unexplained = [f for f in findings if f not in REASONED]
    details = "\n".join(f"{f.issue} {f.detail} {f.location}" for f in policy.findings if (f.issue, name) in unexplained)
    assert not unexplained, f"{layer}/{name}: parliament findings without a reason:\n{details}"


def test_every_reasoned_finding_still_occurs(layers):
    """A reason for a finding that no longer occurs is stale: remove it."""
    assert analyze_policy_string is not None, "parliament is missing from .tools/venv (requirements-tools.txt)"
    seen = set()
    for layer, name in IDENTITY_POLICIES:
        document = layers[layer].data("aws_iam_policy_document")[name]
        policy = analyze_policy_string(to_json(document), include_community_auditors=True)
        seen |= {(f.issue, name) for f in policy.findings}
    stale = sorted(set(REASONED) - seen)
    assert not stale, f"reasons for findings that no longer occur: {stale}"


def test_parliament_can_fail():
    assert analyze_policy_string is not None
    policy = analyze_policy_string(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObjectt"], "Resource": ["arn:aws:s3:::bucket/*"]}]}))
    assert any(f.issue == "UNKNOWN_ACTION" for f in policy.findings)
