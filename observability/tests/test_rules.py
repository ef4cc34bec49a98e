"""The PrometheusRule: valid for Prometheus, unit-tested with promtool, and shaped like the SRE workbook says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import queries

UNIT_TESTS = Path(__file__).resolve().parent.parent / "prometheusrule.test.yaml"
REPOSITORY_ENV = queries.ROOT / "manifests/argocd/repository.env"
RUNBOOKS_URL = "https://github.com/example-org/counter-service/blob/main/observability/runbooks.md"
DASHBOARD_URL = "http://localhost:3000/d/counter-latency/counter-service?var-namespace={{ $labels.namespace }}"

# SLO → (recording-rule metric, error budget)
SLOS = {
    "availability": ("namespace:counter_availability_errors", 0.001),
    "latency": ("namespace:counter_latency_slow", 0.01),
}
# The workbook's tiers: (burn factor, long window, short window, severity, `for`).
TIERS = [(14.4, "1h", "5m", "critical", "2m"), (6, "6h", "30m", "critical", "15m"), (1, "3d", "6h", "warning", "1h")]
WINDOWS = ["5m", "30m", "1h", "6h", "3d"]


def promtool_run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_picked_up_by_kube_prometheus_stack():
    doc = yaml.safe_load(queries.PROMETHEUS_RULE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["labels"].get("release") == "kube-prometheus-stack"


def test_promtool_check_rules(promtool, rules_dir):
    result = promtool_run(promtool, "check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests(promtool, rules_dir):
    shutil.copy(UNIT_TESTS, rules_dir / UNIT_TESTS.name)
    result = promtool_run(promtool, "test", "rules", UNIT_TESTS.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet_at_idle_and_under_healthy_load(rule_groups):
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    by_name = {group["name"]: group for group in tests}
    assert {"idle", "healthy load"} <= set(by_name), "the unit tests need the 'idle' and 'healthy load' groups"

    def cases(groups):
        return [case for group in groups for case in group.get("alert_rule_test", [])]

    for alert in queries.alerts(rule_groups):
        name = alert["alert"]
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in cases(tests)), \
            f"{name}: no unit test shows it firing"
        for quiet_group in ("idle", "healthy load"):
            assert any(c["alertname"] == name and not c.get("exp_alerts") for c in cases([by_name[quiet_group]])), \
                f"{name}: no unit test shows it quiet in '{quiet_group}'"


def test_unit_tests_evaluate_groups_in_a_fixed_order(rule_groups):
    """Without group_eval_order promtool orders groups at random, and the tests would be flaky."""
    order = yaml.safe_load(UNIT_TESTS.read_text()).get("group_eval_order", [])
    assert sorted(order) == sorted(group["name"] for group in rule_groups)
    recording = [g["name"] for g in rule_groups if all("record" in r for r in g["rules"])]
    assert order[: len(recording)] == recording, "recording-rule groups must be evaluated before the alerts"


def test_recording_rules_cover_every_window_with_matching_ranges(rule_groups):
    recorded = {rule["record"]: rule["expr"] for group in rule_groups for rule in group["rules"] if "record" in rule}
    for metric, _ in SLOS.values():
        for window in WINDOWS:
            name = f"{metric}:ratio_rate{window}"
            assert name in recorded, f"missing recording rule {name}"
            ranges = set(re.findall(r"\[(\w+)\]", recorded[name]))
            assert ranges == {window}, f"{name} computes over {ranges}, not {window}"


def test_burn_rate_alerts_follow_the_workbook(rule_groups):
    alerts = queries.alerts(rule_groups)
    for slo, (metric, budget) in SLOS.items():
        slo_alerts = [a for a in alerts if a["labels"].get("slo") == slo]
        assert len(slo_alerts) == len(TIERS), f"{slo}: expected one alert per burn-rate tier"
        seen = set()
        for alert in slo_alerts:
            conditions = re.findall(rf"{re.escape(metric)}:ratio_rate(\w+)(?:\{{namespace=\"counter\"\}})? > \(?([0-9.]+)(?: \* ([0-9.]+))?\)?",
                                    alert["expr"])
            two_windows = len(conditions) == 2 and re.search(r"\sand\s", alert["expr"])
            assert two_windows, f"{alert['alert']}: not a two-window condition"
            (long_w, f1, b1), (short_w, f2, b2) = conditions
            thresholds = [float(f1) * float(b1 or 1), float(f2) * float(b2 or 1)]
            tier = next((t for t in TIERS if (t[1], t[2]) == (long_w, short_w)), None)
            assert tier, f"{alert['alert']}: windows {long_w}/{short_w} are not a workbook pair"
            factor, _, _, severity, hold = tier
            assert thresholds == [pytest.approx(factor * budget)] * 2, \
                f"{alert['alert']}: threshold is not {factor}× the budget"
            assert alert["labels"]["severity"] == severity, alert["alert"]
            assert alert.get("for") == hold, alert["alert"]
            seen.add((long_w, short_w))
        assert seen == {(t[1], t[2]) for t in TIERS}, f"{slo}: tiers {seen}"


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_explains_itself_and_links_its_runbook_section(rule_groups):
    anchors = {github_anchor(line.lstrip("#")) for line in queries.RUNBOOKS.read_text().splitlines()
               if line.startswith("#")}
    for alert in queries.alerts(rule_groups):
        name = alert["alert"]
        annotations = alert.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), f"{name}: summary and description"
        assert alert.get("labels", {}).get("severity") in {"critical", "warning"}, f"{name}: severity label"
        # Absolute: a pager shows it as a link, and a relative path leads nowhere.
        url = annotations.get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == RUNBOOKS_URL, f"{name}: runbook_url {url!r} is not {RUNBOOKS_URL}#…"
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section #{anchor}"
        dashboard = annotations.get("dashboard_url", "")
        assert dashboard == DASHBOARD_URL, f"{name}: dashboard_url {dashboard!r}"


def test_runbook_links_point_at_this_repository():
    """The runbook URLs name the repository Argo CD deploys from (manifests/argocd/repository.env)."""
    env = dict(line.split("=", 1) for line in REPOSITORY_ENV.read_text().splitlines()
               if line and not line.startswith("#"))
    repo = env["REPO_URL"].removesuffix(".git")
    assert RUNBOOKS_URL == f"{repo}/blob/main/observability/runbooks.md"


def test_dashboard_url_opens_this_dashboard(dashboard):
    assert DASHBOARD_URL.split("?")[0].endswith(f"/d/{dashboard['uid']}/counter-service")
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "namespace" in variables


def test_pages_need_a_minimum_of_failed_requests(rule_groups):
    """A ratio alone pages on one error at low traffic; every page also needs 5 bad requests in its long window."""
    for alert in queries.alerts(rule_groups):
        if alert["labels"]["severity"] != "critical" or "slo" not in alert["labels"]:
            continue
        metric = SLOS[alert["labels"]["slo"]][0]
        long_window = re.search(rf"{re.escape(metric)}:ratio_rate(\w+)", alert["expr"]).group(1)
        assert re.search(rf"\sand\s+{re.escape(metric)}:increase{long_window}(?:\{{namespace=\"counter\"\}})? >= 5\s*$", alert["expr"]), \
            f"{alert['alert']}: no minimum of failed requests over {long_window}"


def test_every_alert_reads_the_production_namespace_only(rule_groups):
    """An origin in another namespace (a test deployment) must neither page nor hide production's state: every
    series an alert selects is pinned to namespace="counter"."""
    for alert in queries.alerts(rule_groups):
        selectors = re.findall(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?(?=\s*(?:\[|\)|>|<|=|\s|$))", alert["expr"])
        metrics = [(name, sel) for name, sel in selectors
                   if name.startswith(("namespace:", "counter_", "kube_", "http_"))]
        assert metrics, f"{alert['alert']}: no series found in its expression"
        for name, sel in metrics:
            assert 'namespace="counter"' in sel, f"{alert['alert']}: {name}{sel} is not pinned to namespace=\"counter\""


def test_every_cloudwatch_alarm_links_its_runbook_section():
    """The alarms outside the cluster (terraform/app) page too; each description carries the absolute link to
    a runbook heading that exists, in the same repository as the PrometheusRule's runbook_url."""
    anchors = {github_anchor(line.lstrip("#")) for line in queries.RUNBOOKS.read_text().splitlines()
               if line.startswith("#")}
    alarms = {}
    for tf in sorted((queries.ROOT / "terraform/app").glob("*.tf")):
        for name, body in re.findall(r'resource "aws_cloudwatch_metric_alarm" "(\w+)" \{(.*?)\n\}', tf.read_text(),
                                     re.DOTALL):
            alarms[name] = re.search(r'alarm_description\s*=\s*"((?:[^"\\]|\\.)*)"', body)
    assert alarms, "no aws_cloudwatch_metric_alarm found in terraform/app"
    for name, description in alarms.items():
        assert description, f"alarm {name}: no alarm_description"
        links = re.findall(rf"{re.escape(RUNBOOKS_URL)}#([\w-]+)", description.group(1))
        assert links, f"alarm {name}: its description has no {RUNBOOKS_URL}#… link"
        assert all(anchor in anchors for anchor in links), f"alarm {name}: no runbook heading for {links}"
        assert len(description.group(1)) <= 1024, f"alarm {name}: CloudWatch limits descriptions to 1024 characters"
