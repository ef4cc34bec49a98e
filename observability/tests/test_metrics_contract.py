"""Every series the dashboard and the rules query is one the origin exports, with labels it can carry."""

from __future__ import annotations

import re

import pytest

import origin_metrics
import queries


@pytest.fixture(scope="module")
def all_queries(dashboard, rule_groups) -> list[queries.Query]:
    return queries.dashboard_prometheus_queries(dashboard) + queries.rule_queries(rule_groups)


def test_queried_series_and_label_values_exist(all_queries, rule_groups):
    recorded = queries.recorded_names(rule_groups)
    for query in all_queries:
        for selector in queries.selectors(query.expr):
            if ":" in selector.name:
                assert selector.name in recorded, f"{query.source}: {selector.name} is not a recording rule"
                continue
            try:
                allowed = origin_metrics.allowed_labels(selector.name)
            except KeyError as err:
                pytest.fail(f"{query.source}: {err}")
            for label, (op, value) in queries.matchers(selector).items():
                assert label in allowed, f"{query.source}: {selector.name} has no label {label!r}"
                values = allowed[label]
                if values is not None and op in ("=", "!="):
                    assert value in values, f"{query.source}: {selector.name}{{{label}{op}{value!r}}} never exists"


def test_latency_slo_threshold_is_a_bucket_bound(all_queries):
    """`le="0.05"` must name a real bucket, or the slow-request count would silently be empty."""
    for query in all_queries:
        for selector in queries.selectors(query.expr):
            le = queries.matchers(selector).get("le")
            if le:
                assert le[0] == "=" and float(le[1]) in origin_metrics.HTTP_DURATION_BUCKETS, query.source


def test_origin_source_registers_every_metric():
    """The contract above must match the code: each name is registered in origin/src (as a string literal).

    The process_* series come from the prometheus crate's process collector, which the origin must register.
    """
    sources = origin_metrics.origin_sources()
    missing = sorted(name for name in set(origin_metrics.METRICS) - origin_metrics.PROCESS_METRICS
                     if not origin_metrics.registered_in_source(name, sources))
    assert not missing, f"origin/src does not register (no string literal for): {', '.join(missing)}"
    assert any("ProcessCollector" in text for text in sources.values()), \
        "origin/src does not register prometheus::process_collector::ProcessCollector (process_* metrics)"
    cargo = (origin_metrics.ROOT / "origin/Cargo.toml").read_text()
    assert re.search(r'^prometheus\s*=.*"process"', cargo, re.M), 'the prometheus crate needs features = ["process"]'


def test_origin_source_has_the_slo_bucket():
    """A float array literal next to http_request_duration_seconds holds every bound this contract lists."""
    sources = origin_metrics.origin_sources()
    defining = [text for text in sources.values() if '"http_request_duration_seconds"' in text]
    assert defining, "origin/src does not define http_request_duration_seconds"
    arrays = [{float(n) for n in body.split(",") if n.strip()}
              for text in defining for body in re.findall(r"\[\s*((?:\d+(?:\.\d+)?(?:e-?\d+)?\s*,\s*)+\d[\d.e-]*)\s*,?\s*\]", text)]
    wanted = {float(b) for b in origin_metrics.HTTP_DURATION_BUCKETS}
    assert any(wanted <= array for array in arrays), \
        f"no bucket array in origin/src holds all of {sorted(wanted)}; found {[sorted(a) for a in arrays]}"
