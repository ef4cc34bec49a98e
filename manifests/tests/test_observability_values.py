"""kube-prometheus-stack values: nothing public, no password in Git, and selectors that actually pick
up this repository's ServiceMonitor, PrometheusRule and dashboard ConfigMap."""

from __future__ import annotations

import json
import re

import yaml

from conftest import MANIFESTS, find

VALUES = yaml.safe_load((MANIFESTS / "observability" / "kube-prometheus-stack-values.yaml").read_text())


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, node


def _walk_dicts(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk_dicts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_dicts(value, f"{path}[{index}]")


def test_nothing_is_exposed_outside_the_cluster():
    services = {path: value for path, value in _walk(VALUES) if path.endswith(".service.type")}
    assert services and set(services.values()) == {"ClusterIP"}, services
    assert not any(path.endswith(".ingress.enabled") and value for path, value in _walk(VALUES))


def test_grafana_admin_password_comes_from_a_secret():
    grafana = VALUES["grafana"]
    assert "adminPassword" not in grafana
    assert grafana["admin"]["existingSecret"] and grafana["admin"]["passwordKey"]


def test_dashboard_sidecar_loads_our_configmap(prod):
    sidecar = VALUES["grafana"]["sidecar"]["dashboards"]
    dashboards = find(prod, "ConfigMap", "counter-dashboards")
    assert sidecar["enabled"] and sidecar["searchNamespace"] == "ALL"
    assert dashboards["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert "counter-latency.json" in dashboards["data"]


def test_prometheus_selects_our_servicemonitor_and_rules(prod):
    spec = VALUES["prometheus"]["prometheusSpec"]
    assert spec["retention"] and spec["retentionSize"]
    for kind, selector, namespaces in (("ServiceMonitor", "serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
                                       ("PrometheusRule", "ruleSelector", "ruleNamespaceSelector")):
        assert spec[namespaces] == {}, f"{namespaces} must admit the counter namespace"
        for obj in (d for d in prod if d["kind"] == kind):
            labels = obj["metadata"]["labels"]
            wanted = spec[selector]["matchLabels"]
            assert wanted.items() <= labels.items(), f"{kind}/{obj['metadata']['name']} is not selected"


def test_servicemonitor_keeps_the_origins_endpoint_label(prod):
    # Without honorLabels the operator's own `endpoint` target label (the port name) wins, the origin's
    # route label becomes exported_endpoint, and every SLO rule selecting endpoint="/api/counter" is empty.
    monitor = find(prod, "ServiceMonitor", "counter-origin")
    service = find(prod, "Service", "counter-origin")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


# --- storage (issue 12 #5) ------------------------------------------------------------------------


def claim_templates(node, path=""):
    """Every PersistentVolumeClaim spec the chart would create from these values."""
    if isinstance(node, dict):
        if "volumeClaimTemplate" in node:
            yield f"{path}.volumeClaimTemplate", node["volumeClaimTemplate"]["spec"]
        for key, value in node.items():
            if key != "volumeClaimTemplate":
                yield from claim_templates(value, f"{path}.{key}")


def test_every_volume_claim_resolves_to_a_storage_class_that_exists(prod):
    classes = {d["metadata"]["name"]: d for d in prod if d["kind"] == "StorageClass"}
    claims = dict(claim_templates(VALUES))
    assert ".prometheus.prometheusSpec.storageSpec.volumeClaimTemplate" in claims
    # Grafana's own PVC (persistence) would need the same; it is off because nothing in it is state.
    assert VALUES["grafana"]["persistence"]["enabled"] is False
    defaults = [name for name, sc in classes.items()
                if sc["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert len(defaults) == 1, f"exactly one default StorageClass, found {defaults}"
    for path, spec in claims.items():
        # Named explicitly: on EKS >= 1.30 "the default" is nothing until the manifests create one.
        name = spec.get("storageClassName")
        assert name in classes, f"{path} names StorageClass {name!r}; the manifests ship {sorted(classes)}"


def test_the_storage_class_is_encrypted_gp3_from_the_ebs_csi_driver(prod):
    (gp3,) = [d for d in prod if d["kind"] == "StorageClass"]
    assert gp3["provisioner"] == "ebs.csi.aws.com"
    assert gp3["parameters"]["type"] == "gp3" and gp3["parameters"]["encrypted"] == "true"
    # EBS volumes are zonal: bind only once the pod's zone is known.
    assert gp3["volumeBindingMode"] == "WaitForFirstConsumer"
    assert "Delete=false" in gp3["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]


# --- scrape targets EKS does not expose (issue 12 #8) ---------------------------------------------


def test_control_plane_targets_eks_hides_are_off_with_their_alerts():
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert VALUES[component]["enabled"] is False, component
    rules = VALUES["defaultRules"]["rules"]
    for group in ("etcd", "kubeControllerManager", "kubeSchedulerAlerting", "kubeSchedulerRecording", "kubeProxy"):
        assert rules[group] is False, group


# --- retention for the SLO window (issue 19 #11) ----------------------------------------------------

RULES_FILE = MANIFESTS / "base" / "prometheusrule.yaml"
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> int:
    return sum(int(n) * UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([smhdwy])", duration))


def slo_window_s() -> int:
    """The longest range any rule reads, and the SLO's budget window stated in the rules file."""
    text = RULES_FILE.read_text()
    ranges = [seconds(r) for r in re.findall(r"\[(\d+[smhdwy](?:\d+[smhdwy])*)(?::[^\]]*)?\]", text)]
    budgets = [int(days) * 86400 for days in re.findall(r"(\d+)-day (?:error )?budget", text)]
    assert ranges and budgets, f"no range selectors or '<N>-day budget' in {RULES_FILE}"
    return max(ranges + budgets)


def quantity_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?|[KMGT]B)?", quantity).groups()
    factors = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    return int(number) * factors.get(unit, 1)


ACTIVE_SERIES = 100_000      # kube-prometheus-stack on a small EKS cluster plus the origins, generous
BYTES_PER_SAMPLE = 2         # Prometheus TSDB, compressed (documented 1-2 bytes)


def test_retention_covers_the_slo_window_with_storage_sized_for_it():
    spec = VALUES["prometheus"]["prometheusSpec"]
    retention = seconds(spec["retention"])
    assert retention >= slo_window_s(), f"retention {spec['retention']} is shorter than the rules' SLO window"
    volume = quantity_bytes(spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"])
    size_cap = quantity_bytes(spec["retentionSize"])
    # The WAL and compaction need headroom beyond the blocks retentionSize bounds.
    assert size_cap <= 0.85 * volume, "retentionSize leaves no room for the WAL on the volume"
    samples = ACTIVE_SERIES * retention / seconds(spec["scrapeInterval"])
    assert samples * BYTES_PER_SAMPLE <= size_cap, "retentionSize would cut the window before retention does"


# --- CloudWatch for the CloudFront panels (issue 12 #9) --------------------------------------------


def test_grafana_has_a_read_only_cloudwatch_data_source_for_cloudfront():
    (cloudwatch,) = [d for d in VALUES["grafana"]["additionalDataSources"] if d["type"] == "cloudwatch"]
    # The SDK's default chain, i.e. the Pod Identity role's credentials: no keys in values or Git.
    assert cloudwatch["jsonData"]["authType"] == "default" and "secureJsonData" not in cloudwatch
    # CloudFront publishes its metrics only in us-east-1.
    assert cloudwatch["jsonData"]["defaultRegion"] == "us-east-1"
    assert cloudwatch["editable"] is False
    assert VALUES["grafana"]["serviceAccount"]["name"] == "kube-prometheus-stack-grafana"
    dashboard = json.loads((MANIFESTS / "base" / "dashboards" / "counter-latency.json").read_text())
    used = {value.get("type") for path, value in _walk_dicts(dashboard) if path.endswith(".datasource")}
    assert "cloudwatch" in used, "the dashboard has no CloudWatch panel: is this data source still needed?"
