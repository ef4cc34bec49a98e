"""kube-prometheus-stack values: nothing public, no password in Git, and selectors that actually pick
up this repository's ServiceMonitor, PrometheusRule and dashboard ConfigMap."""

from __future__ import annotations

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
