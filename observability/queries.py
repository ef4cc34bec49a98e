"""Every PromQL expression the project ships, in one place, so tests check them all the same way.

Two sources: the PrometheusRule (recording and alerting rules) and the Grafana dashboard (panel targets
and template-variable queries). Dashboard expressions contain Grafana variables; `substitute` replaces them
with values Prometheus accepts, the way Grafana would at query time, so the result can be handed to
promtool or to a running Prometheus unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_RULE = ROOT / "manifests/base/prometheusrule.yaml"
DASHBOARD = ROOT / "manifests/base/dashboards/counter-latency.json"
RUNBOOKS = ROOT / "observability/runbooks.md"

# What Grafana puts in place of its built-in and dashboard variables. `$pod` is the "All" value; the
# intervals are long enough to hold several samples at a 15–30 s scrape interval.
DEFAULT_VARIABLES = {
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "1h",
    "namespace": "counter",
    "pod": ".*",
}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it came from (for failure messages)."""

    source: str
    expr: str


def load_rule_groups(path: Path = PROMETHEUS_RULE) -> list[dict]:
    """The `spec.groups` of the PrometheusRule: exactly what Prometheus loads as a rule file."""
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") != "PrometheusRule":
        raise ValueError(f"{path} is not a PrometheusRule")
    return doc["spec"]["groups"]


def write_rules_file(path: Path, groups: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def load_dashboard(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text())


def dashboard_panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested inside collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """Replace `$name`, `${name}` and `[[name]]` Grafana variables; unknown variables are an error."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in: {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def dashboard_prometheus_queries(dashboard: dict, variables: dict[str, str] | None = None) -> list[Query]:
    """Panel targets and query variables that run against the Prometheus data source, variables substituted."""
    queries = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                queries.append(Query(f'panel {panel["id"]} "{panel["title"]}" target {target["refId"]}',
                                     substitute(target["expr"], variables)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("target", {}).get("expr")
        if expr and annotation["datasource"]["type"] == "prometheus":
            queries.append(Query(f'annotation "{annotation["name"]}"', substitute(expr, variables)))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query" and isinstance(query, dict) and "query" in query \
                and var["datasource"]["type"] == "prometheus":
            # label_values(SELECTOR, label) is Grafana's, not PromQL: the selector is what reaches Prometheus.
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query["query"].strip())
            if not match:
                raise ValueError(f"variable ${var['name']}: unsupported query {query['query']!r}")
            queries.append(Query(f"variable ${var['name']}", substitute(match.group(1), variables)))
    return queries


def rule_queries(groups: list[dict]) -> list[Query]:
    queries = []
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            queries.append(Query(f"rule {group['name']}/{name}", rule["expr"]))
    return queries


def recorded_names(groups: list[dict]) -> set[str]:
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def alerts(groups: list[dict]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector in the expression (including those inside range selectors)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def matchers(selector: promql_parser.VectorSelector) -> dict[str, tuple[str, str]]:
    """label name → (operator, value), operator one of = != =~ !~."""
    ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    return {m.name: (ops[str(m.op).rsplit(".", 1)[-1]], m.value) for m in selector.matchers.matchers}
