"""The metrics the origin exports, as the dashboard and the rules may use them.

This is the contract between `origin/src/` (which registers the metrics) and `manifests/base/` (which queries
them). Tests check both directions: every name and label value a query uses is listed here, and every name
listed here is registered by the origin's source.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORIGIN_SRC = ROOT / "origin/src"

# Fixed label values (docs/design.md §5: no request can create a new series).
ENDPOINTS = {"/api/counter", "/healthz", "/readyz", "static", "other"}
METHODS = {"GET", "HEAD", "POST", "OPTIONS", "other"}
OUTCOMES = {"committed", "shed", "failed", "ambiguous", "expired", "replayed"}

# name → (type, {label: allowed values, or None for "any value"})
METRICS: dict[str, tuple[str, dict[str, set[str] | None]]] = {
    "http_requests_total": ("counter", {"method": METHODS, "endpoint": ENDPOINTS, "status": None}),
    "http_request_duration_seconds": ("histogram", {"method": METHODS, "endpoint": ENDPOINTS}),
    "counter_value": ("gauge", {}),
    "counter_batch_size": ("histogram", {}),
    "counter_store_statement_duration_seconds": ("histogram", {"op": {"add", "get", "ping"}}),
    "counter_write_queue_depth": ("gauge", {}),
    "counter_write_queue_high_water": ("gauge", {}),
    "counter_write_queue_capacity": ("gauge", {}),
    "counter_store_pool_connections": ("gauge", {"state": {"in_use", "idle"}}),
    "counter_store_pool_max_connections": ("gauge", {}),
    "counter_store_pool_waiting": ("gauge", {}),
    "counter_read_cache_requests_total": ("counter", {"result": {"hit", "miss"}}),
    "counter_increments_total": ("counter", {"outcome": OUTCOMES}),
    "counter_ready": ("gauge", {}),
    "counter_build_info": ("gauge", {"version": None, "revision": None}),
    # From the prometheus crate's process collector (feature "process"), not string literals in our source.
    "process_cpu_seconds_total": ("counter", {}),
    "process_resident_memory_bytes": ("gauge", {}),
    "process_open_fds": ("gauge", {}),
}
PROCESS_METRICS = {name for name in METRICS if name.startswith("process_")}

# Series the dashboard reads from other exporters in the cluster (kube-prometheus-stack scrapes them): the kubelet's
# cAdvisor, kube-state-metrics, and Prometheus' own. Names and labels as those exporters publish them; the origin
# does not register these, and the end-to-end test serves samples of them (observability/tests/kubernetes.prom).
POD_CONTAINER = {"pod": None, "container": None}
EXTERNAL_METRICS: dict[str, tuple[str, dict[str, set[str] | None]]] = {
    "up": ("gauge", {"job": None}),
    "ALERTS": ("gauge", {"alertname": None, "alertstate": {"pending", "firing"}, "severity": None, "slo": None}),
    "container_cpu_usage_seconds_total": ("counter", POD_CONTAINER),
    "container_cpu_cfs_periods_total": ("counter", POD_CONTAINER),
    "container_cpu_cfs_throttled_periods_total": ("counter", POD_CONTAINER),
    "container_memory_working_set_bytes": ("gauge", POD_CONTAINER),
    "kube_pod_container_resource_requests": ("gauge", {**POD_CONTAINER, "resource": {"cpu", "memory"}, "unit": None}),
    "kube_pod_container_resource_limits": ("gauge", {**POD_CONTAINER, "resource": {"cpu", "memory"}, "unit": None}),
    "kube_pod_container_status_restarts_total": ("counter", POD_CONTAINER),
    "kube_deployment_spec_replicas": ("gauge", {"deployment": {"counter-origin"}}),
    **{f"kube_horizontalpodautoscaler_{name}": ("gauge", {"horizontalpodautoscaler": {"counter-origin"}})
       for name in ("status_current_replicas", "status_desired_replicas", "spec_min_replicas", "spec_max_replicas")},
}

# Bucket bounds of http_request_duration_seconds (seconds). The latency SLO threshold must be one of them,
# or "requests under 50 ms" would be an interpolation instead of a count.
# The three lowest resolve a cached GET (tens of microseconds); without them every GET lands in the ≤ 100 µs bucket
# and its quantiles are straight interpolation lines.
HTTP_DURATION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                         0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Labels Prometheus attaches when scraping through the ServiceMonitor (with honorLabels: true, so the
# origin's own `endpoint` label wins over the operator's port-name label of the same name).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container"}


def resolve(series_name: str) -> tuple[str, str | None]:
    """Map a series name to (metric, histogram suffix or None); KeyError if the origin has no such metric."""
    if series_name in EXTERNAL_METRICS:
        return series_name, None
    if series_name in METRICS:
        if METRICS[series_name][0] == "histogram":
            raise KeyError(f"{series_name} is a histogram: query its _bucket, _sum or _count series")
        return series_name, None
    for suffix in ("_bucket", "_sum", "_count"):
        base = series_name[: -len(suffix)]
        if series_name.endswith(suffix) and METRICS.get(base, ("",))[0] == "histogram":
            return base, suffix
    raise KeyError(f"the origin exports no series named {series_name}")


def allowed_labels(series_name: str) -> dict[str, set[str] | None]:
    metric, suffix = resolve(series_name)
    labels: dict[str, set[str] | None] = dict({**METRICS, **EXTERNAL_METRICS}[metric][1])
    if suffix == "_bucket":
        labels["le"] = None
    labels.update({name: None for name in TARGET_LABELS})
    return labels


def origin_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(ORIGIN_SRC.rglob("*.rs"))}


def registered_in_source(name: str, sources: dict[Path, str]) -> bool:
    """The metric name appears as a Rust string literal somewhere in origin/src."""
    literal = re.compile(r'"' + re.escape(name) + r'"')
    return any(literal.search(text) for text in sources.values())
