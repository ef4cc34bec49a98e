"""One Kubernetes minor everywhere (B3: the README asked for 1.32 after its standard support ended,
and the pins that depend on the cluster's minor drifted on their own).

The cluster is created in the console, so the minor is pinned in infra's `kubernetes_version`
(its node groups refuse a cluster on another minor); every other pin must name the same minor."""

import datetime
import re

from conftest import REPO, TERRAFORM

# appVersion of the kubernetes/autoscaler cluster-autoscaler chart versions this project has pinned,
# from cluster-autoscaler/charts/cluster-autoscaler/Chart.yaml in kubernetes/autoscaler. A new pin
# needs its row here: the Cluster Autoscaler's minor must equal the cluster's.
CLUSTER_AUTOSCALER_APP_VERSION = {
    "9.46.6": "1.32.0",
    "9.59.1": "1.35.0",
}

# End of EKS standard support per minor, from the EKS Kubernetes release calendar
# (docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html). A new minor needs its row.
EKS_END_OF_STANDARD_SUPPORT = {
    "1.32": datetime.date(2026, 3, 23),
    "1.33": datetime.date(2026, 7, 29),
    "1.34": datetime.date(2026, 12, 2),
    "1.35": datetime.date(2027, 3, 27),
}
# When the pin was last chosen, and the notice it must leave. Fixed rather than today's date, so
# the suite stays deterministic; terraform/README.md gives the end date operators plan against.
PIN_REVIEWED = datetime.date(2026, 11, 27)
UPGRADE_NOTICE = datetime.timedelta(days=60)


def minor(version):
    match = re.match(r"v?(\d+\.\d+)", version)
    assert match, f"not a Kubernetes version: {version!r}"
    return match.group(1)


def pins(layers):
    """Every place that names the cluster's Kubernetes minor, as {where: minor}."""
    found = {"infra kubernetes_version": minor(layers["infra"].variables()["kubernetes_version"]["default"])}

    chart = layers["app"].variables()["cluster_autoscaler_chart_version"]["default"]
    assert chart in CLUSTER_AUTOSCALER_APP_VERSION, (
        f"cluster-autoscaler chart {chart}: add its appVersion (kubernetes/autoscaler Chart.yaml) to this test"
    )
    found["app cluster_autoscaler_chart_version"] = minor(CLUSTER_AUTOSCALER_APP_VERSION[chart])

    namespace = (REPO / "manifests" / "overlays" / "prod" / "namespace.yaml").read_text()
    for label in ("enforce-version", "warn-version"):
        value = re.search(rf"pod-security\.kubernetes\.io/{label}:\s*(\S+)", namespace)
        assert value, f"namespace.yaml has no {label}"
        found[f"namespace {label}"] = minor(value.group(1))

    schemas = (REPO / "manifests" / "tests" / "test_schemas.py").read_text()
    found["manifests schema version"] = minor(re.search(r'KUBERNETES_VERSION = "([^"]+)"', schemas).group(1))

    readme = (TERRAFORM / "README.md").read_text()
    row = re.search(r"\|\s*Kubernetes version\s*\|\s*`([^`]+)`", readme)
    assert row, "terraform/README.md step 3 names no Kubernetes version"
    found["terraform/README.md step 3"] = minor(row.group(1))

    for path in ("scripts/test-manifests.sh", "manifests/README.md"):
        for named in re.findall(r"Kubernetes (\d+\.\d+) schemas", (REPO / path).read_text()):
            found[f"{path} ({named})"] = named
    return found


def test_every_pin_names_the_clusters_kubernetes_minor(layers):
    found = pins(layers)
    assert len(set(found.values())) == 1, f"Kubernetes minors disagree: {found}"


def test_the_cluster_minor_is_enforced_not_only_documented(layers):
    node_group = layers["infra"].resource("aws_eks_node_group", "this")
    conditions = [p["condition"] for p in node_group["lifecycle"][0]["precondition"]] if isinstance(
        node_group["lifecycle"], list
    ) else [node_group["lifecycle"]["precondition"][0]["condition"]]
    assert "${data.aws_eks_cluster.this.version == var.kubernetes_version}" in conditions, conditions


def test_the_pinned_minor_stays_in_eks_standard_support(layers):
    pinned = minor(layers["infra"].variables()["kubernetes_version"]["default"])
    assert pinned in EKS_END_OF_STANDARD_SUPPORT, f"add {pinned}'s end of standard support to this test"
    ends = EKS_END_OF_STANDARD_SUPPORT[pinned]
    assert PIN_REVIEWED + UPGRADE_NOTICE < ends, (
        f"EKS standard support for {pinned} ends {ends}: pick a newer minor and move every pin together"
    )
    readme = (REPO / "terraform" / "README.md").read_text(encoding="utf-8")
    assert ends.isoformat() in readme, f"terraform/README.md must say {pinned}'s support ends {ends}"
