"""The Grafana dashboard: a well-formed Grafana document whose every query parses and means what it says."""

from __future__ import annotations

import itertools
import re
import subprocess

import pytest
import yaml

import queries

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
            "counter_write_queue_depth", "counter_read_cache_requests_total", "counter_value",
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
