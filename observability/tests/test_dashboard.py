"""The Grafana dashboard: a well-formed Grafana document whose every query parses and means what it says."""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import origin_metrics
import queries

SCHEMA_CHECK = Path(__file__).resolve().parents[1] / "schema/check.mjs"
GRID_WIDTH = 24
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
CLOUDFRONT_METRICS = {"Requests", "CacheHitRate", "OriginLatency", "4xxErrorRate", "5xxErrorRate"}


def variables(dashboard) -> dict[str, dict]:
    return {var["name"]: var for var in dashboard["templating"]["list"]}


def content_panels(dashboard) -> list[dict]:
    return [p for p in queries.dashboard_panels(dashboard) if p["type"] != "row"]


def prometheus_targets(dashboard):
    for panel in content_panels(dashboard):
        for target in panel["targets"]:
            if target["datasource"]["type"] == "prometheus":
                yield panel, target


def test_document_shape(dashboard):
    assert dashboard["uid"] == "counter-latency"  # stable: links and the README point at it
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"


def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in queries.dashboard_panels(dashboard)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"


def test_panels_fit_the_grid_without_overlapping(dashboard):
    cells = {}
    for panel in queries.dashboard_panels(dashboard):
        pos = panel["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"} and all(isinstance(v, int) for v in pos.values()), panel["title"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_WIDTH, f'{panel["title"]} is wider than the grid'
        for cell in itertools.product(range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])):
            assert cell not in cells, f'{panel["title"]} overlaps {cells[cell]}'
            cells[cell] = panel["title"]


def test_datasources_are_template_variables(dashboard):
    """No data source uid of one Grafana installation is baked in: every panel and target names a variable."""
    vars_ = variables(dashboard)
    for name, plugin in (("datasource", "prometheus"), ("cloudwatch", "cloudwatch")):
        assert vars_[name]["type"] == "datasource" and vars_[name]["query"] == plugin
    for panel in content_panels(dashboard):
        for ref in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
            match = re.fullmatch(r"\$\{(\w+)\}", ref["uid"])
            assert match and match.group(1) in vars_, f'{panel["title"]}: data source {ref}'
            assert vars_[match.group(1)]["query"] == ref["type"], f'{panel["title"]}: {ref} is the wrong plugin'
    for var in vars_.values():
        if var["type"] == "query":
            assert re.fullmatch(r"\$\{(\w+)\}", var["datasource"]["uid"]), f'variable {var["name"]}'


def test_templated_by_namespace_and_pod(dashboard):
    vars_ = variables(dashboard)
    assert "$namespace" in vars_["pod"]["query"]["query"], "the pod list must follow the chosen namespace"
    assert vars_["pod"]["includeAll"] and vars_["pod"]["allValue"] == ".*"
    for panel, target in prometheus_targets(dashboard):
        for selector in queries.selectors(queries.substitute(target["expr"], {"namespace": "NS", "pod": "POD"})):
            labels = queries.matchers(selector)
            assert labels.get("namespace") == ("=", "NS"), f'{panel["title"]}: {selector.name} ignores $namespace'
            if "pod" in labels:
                assert labels["pod"] == ("=~", "POD"), f'{panel["title"]}: {selector.name} pod filter'


def test_every_variable_used_is_defined(dashboard):
    defined = set(variables(dashboard)) | BUILTIN_VARIABLES
    text = str([p.get("targets", []) for p in queries.dashboard_panels(dashboard)])
    used = set(re.findall(r"\$\{?(\w+)", text))
    assert used <= defined, f"undefined variables: {used - defined}"


def test_units_and_thresholds_on_every_panel(dashboard):
    for panel in content_panels(dashboard):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f'{panel["title"]}: no unit'
        steps = defaults.get("thresholds", {}).get("steps", [])
        assert steps and steps[0]["value"] is None, f'{panel["title"]}: thresholds need a base step'
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), f'{panel["title"]}: thresholds out of order'


def test_latency_panels_are_about_the_api_only(dashboard):
    """The original mixed /metrics and probes into the API's latency; ours selects the route explicitly."""
    for panel, target in prometheus_targets(dashboard):
        for selector in queries.selectors(queries.substitute(target["expr"])):
            if selector.name.startswith("http_request_duration_seconds"):
                assert queries.matchers(selector).get("endpoint") == ("=", "/api/counter"), panel["title"]


def test_latency_percentiles_and_the_issue_panels_are_present(dashboard):
    exprs = [queries.substitute(t["expr"]) for _, t in prometheus_targets(dashboard)]
    for q in ("0.5", "0.9", "0.99"):
        assert any(f"histogram_quantile({q}, " in e and "http_request_duration_seconds_bucket" in e for e in exprs), q
    used = {s.name for e in exprs for s in queries.selectors(e)}
    for series in (
            "http_requests_total", "counter_batch_size_bucket", "counter_store_statement_duration_seconds_bucket",
            "counter_write_queue_depth", "counter_write_queue_high_water", "counter_write_queue_capacity",
            "counter_store_pool_connections", "counter_store_pool_waiting",
            "counter_read_cache_requests_total", "counter_value", "counter_build_info",
            "counter_increments_total", "process_cpu_seconds_total", "process_resident_memory_bytes",
    ):
        assert series in used, f"no panel shows {series}"


def test_cloudfront_panels_query_cloudwatch_correctly(dashboard):
    vars_ = variables(dashboard)
    distribution = vars_["distribution"]
    assert distribution["datasource"]["type"] == "cloudwatch"
    assert distribution["query"]["queryType"] == "dimensionValues"
    assert distribution["query"]["dimensionKey"] == "DistributionId"
    metrics = set()
    for panel in content_panels(dashboard):
        for target in panel["targets"]:
            if target["datasource"]["type"] != "cloudwatch":
                continue
            # CloudFront publishes its metrics only in us-east-1, with Region=Global.
            assert target["region"] == "us-east-1" and target["namespace"] == "AWS/CloudFront", panel["title"]
            assert target["dimensions"] == {"DistributionId": "$distribution", "Region": "Global"}, panel["title"]
            # One statistic per metric is valid; OriginLatency is published as percentiles.
            valid = {"Requests": {"Sum"}, "OriginLatency": {"p50", "p90", "p99"}}.get(target["metricName"], {"Average"})
            assert target["statistic"] in valid, f'{panel["title"]}: {target["statistic"]}'
            metrics.add(target["metricName"])
    assert metrics == CLOUDFRONT_METRICS


def test_every_query_is_valid_promql(promtool, tmp_path, dashboard, rule_groups):
    """promtool parses each expression as a recording rule; a syntax error or a misspelled function fails."""
    exprs = queries.dashboard_prometheus_queries(dashboard) + queries.rule_queries(rule_groups)
    rules = [{"record": f"check:query_{i}", "expr": q.expr} for i, q in enumerate(exprs)]
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", "queries.yaml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def ratio_targets(dashboard):
    """The SLI panels: 5xx ratio and slow-POST ratio, which must read 0 (not NaN, not empty) at idle."""
    found = []
    for panel, target in prometheus_targets(dashboard):
        if panel["fieldConfig"]["defaults"]["unit"] != "percentunit":
            continue
        expr = target["expr"]
        if 'status=~"5.."' in expr or 'le="0.05"' in expr:
            found.append((panel, target))
    return found


@pytest.mark.parametrize("scenario", ["no traffic ever", "idle after traffic", "10 % bad"])
def test_sli_panels_read_zero_at_idle(promtool, tmp_path, dashboard, scenario):
    """Evaluate the dashboard's own ratio expressions in promtool against synthetic series."""
    targets = ratio_targets(dashboard)
    assert len(targets) >= 4, "expected the 5xx and slow-POST ratios as stat and time series"
    api = 'namespace="counter",pod="a",endpoint="/api/counter",method="POST"'
    series = {
        "no traffic ever": [],
        "idle after traffic": [  # counters that stopped moving an hour ago; no 5xx series was ever created
            (f'http_requests_total{{{api},status="200"}}', "0+100x60 6000x120"),
            (f"http_request_duration_seconds_count{{{api}}}", "0+100x60 6000x120"),
            (f'http_request_duration_seconds_bucket{{{api},le="0.05"}}', "0+100x60 6000x120"),
        ],
        "10 % bad": [
            (f'http_requests_total{{{api},status="200"}}', "0+90x180"),
            (f'http_requests_total{{{api},status="500"}}', "0+10x180"),
            (f"http_request_duration_seconds_count{{{api}}}", "0+100x180"),
            (f'http_request_duration_seconds_bucket{{{api},le="0.05"}}', "0+90x180"),
        ],
    }[scenario]
    expected = 1000 if scenario == "10 % bad" else 0  # per 10 000, rounded
    tests = [{"expr": f"round(10000 * ({queries.substitute(t['expr'])}))", "eval_time": "3h",
              "exp_samples": [{"labels": "{}", "value": expected}]} for _, t in targets]
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
                   "promql_expr_test": tests}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def exprs_of(panel) -> list[str]:
    return [queries.substitute(t["expr"]) for t in panel.get("targets", []) if "expr" in t]


def panels_titled(dashboard, pattern: str) -> list[dict]:
    found = [p for p in content_panels(dashboard) if re.search(pattern, p["title"])]
    assert found, f"no panel titled like {pattern!r}"
    return found


def schema_check(dashboard: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing (>= 20): the dashboard is checked against @grafana/schema with TypeScript")
    if not (SCHEMA_CHECK.parent / "node_modules/@grafana/schema").is_dir():
        pytest.fail("observability/schema/node_modules is missing: run `npm ci` there (scripts/test-observability.sh does)")
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(dashboard))
    return subprocess.run([node, str(SCHEMA_CHECK), str(path)], capture_output=True, text=True, timeout=120, check=False)


def test_valid_against_grafanas_schema(dashboard, tmp_path):
    """The document against @grafana/schema's Dashboard, each panel's options against its plugin's types."""
    result = schema_check(dashboard, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_schema_check_catches_a_wrong_field(dashboard, tmp_path):
    broken = copy.deepcopy(dashboard)
    stat = next(p for p in content_panels(broken) if p["type"] == "stat")
    stat["options"]["colourMode"] = stat["options"].pop("colorMode")
    result = schema_check(broken, tmp_path)
    assert result.returncode == 1 and "colourMode" in result.stderr, result.stderr[-2000:]


def test_no_panel_overcounts_with_increase_over_a_window_longer_than_its_step(dashboard):
    """increase(…[$__rate_interval]) at a step shorter than the window counts each event window/step times."""
    for panel, target in prometheus_targets(dashboard):
        assert not re.search(r"increase\([^\]]*\[\$__rate_interval\]", target["expr"]), \
            f'{panel["title"]}: increase over $__rate_interval (use rate)'


def test_not_counted_increments_exclude_replayed_retries(dashboard):
    (panel,) = panels_titled(dashboard, r"^Shed, failed")
    (expr,) = exprs_of(panel)
    (selector,) = [s for s in queries.selectors(expr) if s.name == "counter_increments_total"]
    op, value = queries.matchers(selector)["outcome"]
    assert op == "=~"
    shown = {o for o in origin_metrics.OUTCOMES if re.fullmatch(value, o)}
    assert shown == {"shed", "failed", "ambiguous", "expired"}, shown


def test_batch_size_is_not_an_interpolated_quantile(dashboard):
    """All batches of size 1 sit in the (0, 1] bucket, where histogram_quantile interpolates to 0.5."""
    for panel, target in prometheus_targets(dashboard):
        assert not ("histogram_quantile" in target["expr"] and "counter_batch_size_bucket" in target["expr"]), \
            panel["title"]


def test_variables_come_from_the_scrape_targets_not_the_origins_own_series(dashboard):
    """`up` exists while the target does, even when the origin reports nothing: the dashboard never empties."""
    vars_ = variables(dashboard)
    for name in ("namespace", "pod"):
        (selector,) = queries.selectors(re.fullmatch(r"label_values\((.*),\s*\w+\)",
                                                     vars_[name]["query"]["query"]).group(1).replace("$namespace", "NS"))
        assert selector.name == "up" and queries.matchers(selector)["job"] == ("=", "counter-origin"), name


def test_the_top_row_shows_what_is_broken_now(dashboard):
    top = [p for p in dashboard["panels"] if p["gridPos"]["y"] < dashboard["panels"][1]["gridPos"]["y"] + 4
           and p["type"] == "stat"]
    used = {s.name for p in top for e in exprs_of(p) for s in queries.selectors(e)}
    assert {"http_requests_total", "counter_ready", "kube_deployment_spec_replicas", "ALERTS"} <= used, used
    (alerts,) = [e for p in top for e in exprs_of(p) if "ALERTS" in e]
    assert ("=", "firing") in queries.matchers(queries.selectors(alerts)[0]).values()


@pytest.mark.parametrize("title", ["Requests/s", "Ready / desired pods", "Firing alerts"])
def test_top_row_stats_read_zero_not_no_data_when_nothing_is_there(promtool, tmp_path, dashboard, title):
    """With no origin series at all (the outage these panels exist for) each reads 0, so its red step shows."""
    (panel,) = panels_titled(dashboard, "^" + re.escape(title) + "$")
    first = queries.substitute(panel["targets"][0]["expr"])
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [
            {"series": 'kube_deployment_spec_replicas{namespace="counter",deployment="counter-origin"}', "values": "3x10"}],
            "promql_expr_test": [{"expr": first, "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 0}]}]}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["color"] == "red" or title == "Firing alerts"


def test_write_queue_panel_shows_the_high_water_mark_against_capacity(dashboard):
    (panel,) = panels_titled(dashboard, "^Write queue")
    used = {s.name for e in exprs_of(panel) for s in queries.selectors(e)}
    assert {"counter_write_queue_high_water", "counter_write_queue_capacity"} <= used


def test_burn_rate_panels_draw_every_alert_window_and_the_budget_left(dashboard, rule_groups):
    for slo, metric in (("availability", "namespace:counter_availability_errors"),
                        ("latency", "namespace:counter_latency_slow")):
        windows = {w for a in queries.alerts(rule_groups) if a["labels"].get("slo") == slo
                   for w in re.findall(rf"{re.escape(metric)}:ratio_rate(\w+)", a["expr"])}
        (panel,) = panels_titled(dashboard, rf"^{slo.capitalize()} burn rate")
        drawn = {w for e in exprs_of(panel) for w in re.findall(rf"{re.escape(metric)}:ratio_rate(\w+)", e)}
        assert windows == drawn, f"{slo}: alerts read {windows}, the panel draws {drawn}"
        lines = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
        assert {1, 6, 14.4} <= set(lines), lines
        (budget,) = panels_titled(dashboard, r"^Error budget left")
        assert any(f"{metric}:ratio_rate30d" in e for e in exprs_of(budget)), slo


def test_saturation_row_reads_cadvisor_and_kube_state_metrics(dashboard):
    used = {s.name for p in content_panels(dashboard) for e in exprs_of(p) for s in queries.selectors(e)}
    for series in ("container_cpu_usage_seconds_total", "kube_pod_container_resource_requests",
                   "kube_pod_container_resource_limits", "container_cpu_cfs_throttled_periods_total",
                   "container_memory_working_set_bytes", "kube_pod_container_status_restarts_total",
                   "kube_horizontalpodautoscaler_status_current_replicas",
                   "kube_horizontalpodautoscaler_status_desired_replicas"):
        assert series in used, f"no panel shows {series}"


def test_links_lead_to_runbooks_traces_logs_and_deployments(dashboard):
    titles = {link["title"]: link["url"] for link in dashboard["links"]}
    assert titles.keys() >= {"Runbooks", "X-Ray traces", "Logs Insights", "Argo CD"}, titles
    assert all(url.startswith("https://") for url in titles.values()), titles
    assert titles["Runbooks"].endswith("/observability/runbooks.md")
    assert [a for a in dashboard["annotations"]["list"] if a["name"] == "Deployments"]


def test_trace_and_log_links_open_the_clusters_region_and_log_group(dashboard):
    """The console opens in the user's last region otherwise, and Logs Insights with no log group selected."""
    vars_ = variables(dashboard)
    region = re.search(r'variable "aws_region" \{[^}]*default\s*=\s*"([^"]+)"',
                       (queries.ROOT / "terraform/infra/variables.tf").read_text()).group(1)
    cluster = re.search(r'variable "cluster_name" \{[^}]*default\s*=\s*"([^"]+)"',
                        (queries.ROOT / "terraform/infra/variables.tf").read_text()).group(1)
    assert vars_["region"]["current"]["value"] == region, "the region variable defaults to the cluster's region"
    assert vars_["cluster"]["current"]["value"] == cluster, "the cluster variable defaults to terraform's cluster_name"
    titles = {link["title"]: link["url"] for link in dashboard["links"]}
    for title in ("X-Ray traces", "Logs Insights"):
        assert titles[title].startswith("https://${region}.console.aws.amazon.com/"), title
        assert "?region=${region}#" in titles[title], title
    # The console's URL encoding of the log group name ("*2f" is "/").
    log_group = "/aws/containerinsights/${cluster}/application"
    assert "*2f".join(log_group.split("/")) in titles["Logs Insights"], f"Logs Insights does not open {log_group}"
    assert re.search(r'"/aws/containerinsights/\$\{[^}]+\}/\$\{each.key\}"',
                     (queries.ROOT / "terraform/infra/eks.tf").read_text()), "the log group terraform creates moved"


def test_namespace_defaults_to_production(dashboard):
    """With nothing selected every panel, and the Firing alerts stat, would read nothing."""
    assert variables(dashboard)["namespace"]["current"]["value"] == "counter"


def test_top_row_stats_read_the_last_minute(dashboard):
    """A 5-minute window stays green for up to 5 minutes after traffic stops; the top row says what is true now."""
    top = [p for p in dashboard["panels"] if p["gridPos"]["y"] < dashboard["panels"][1]["gridPos"]["y"] + 4
           and p["type"] == "stat" and "$__range" not in str(p["targets"])]
    for panel in top:
        for expr in exprs_of(panel):
            windows = set(re.findall(r"\[([^\]]+)\]", expr))
            assert windows <= {"1m"}, f'{panel["title"]}: windows {windows}'


def test_deployment_annotation_marks_a_new_revision_not_a_scale_out(promtool, tmp_path, dashboard):
    """The HPA changing spec.replicas bumps the Deployment's generation too; only a new revision serving is a
    deploy. At 10m the HPA adds pod b (same revision); at 20m pod c serves revision r2."""
    (annotation,) = [a for a in dashboard["annotations"]["list"] if a["name"] == "Deployments"]
    expr = queries.substitute(annotation["target"]["expr"])
    build = 'counter_build_info{namespace="counter",pod="%s",version="1.0.%s",revision="%s"}'
    series = [
        {"series": build % ("a", 0, "r1"), "values": "1x40"},
        {"series": build % ("b", 0, "r1"), "values": "_x10 1x30"},
        {"series": build % ("c", 1, "r2"), "values": "_x20 1x20"},
        {"series": 'kube_deployment_metadata_generation{namespace="counter",deployment="counter-origin"}',
         "values": "1x10 2x10 3x20"},
    ]
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [
            {"expr": expr, "eval_time": "9m", "exp_samples": []},
            {"expr": expr, "eval_time": "11m", "exp_samples": []},
            {"expr": expr, "eval_time": "21m", "exp_samples": [
                {"labels": '{version="1.0.1",revision="r2"}', "value": 1}]},
            {"expr": expr, "eval_time": "30m", "exp_samples": []},
        ]}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_a_runbook_names_exists(dashboard):
    """Runbooks name panels in italics; each must be a panel title (or its part before " — " or ":"), the
    Deployments annotation or a dashboard link, so a renamed panel cannot leave on-call looking for something that is not there."""
    names = {a["name"] for a in dashboard["annotations"]["list"]} | {link["title"] for link in dashboard["links"]}
    for panel in queries.dashboard_panels(dashboard):
        title = panel["title"]
        names |= {title, re.split(r" — |:", title)[0]}
    for doc in (queries.RUNBOOKS, queries.ROOT / "observability/README.md"):
        text = doc.read_text()
        if doc != queries.RUNBOOKS:
            text = text.split("<!-- panels -->", 1)[-1] if "<!-- panels -->" in text else ""
        quoted = {" ".join(q.split()) for q in re.findall(r"(?<![*\w])\*(?![*\s])([^*]+?)(?<!\s)\*(?![*\w])", text)}
        assert quoted or doc != queries.RUNBOOKS, "the runbooks name no panel"
        missing = sorted(set(quoted) - names)
        assert not missing, f"{doc.name} names panels the dashboard does not have: {missing}"
