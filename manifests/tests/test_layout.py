"""The base is one sub-base per workload (base/origin: the origin and its schema migration;
base/collector: the ADOT collector) plus what spans the namespace (default deny, monitoring). Each
part renders on its own, holds only its own workload's objects, and the base is exactly their union."""

from __future__ import annotations

from conftest import MANIFESTS, kustomize

# app.kubernetes.io/name of the objects each part may hold.
PARTS = {
    "origin": {"counter-origin", "counter-migrate"},
    "collector": {"adot-collector"},
}
# What the base itself adds: the namespace's default deny and the service's monitoring (by kind, so
# a new alert group or dashboard needs no edit here).
DEFAULT_DENY = ("NetworkPolicy", "default-deny")
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


def ids(docs: list[dict]) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"]["name"]) for d in docs]


def test_each_part_renders_alone_with_only_its_workload():
    for part, names in PARTS.items():
        docs = kustomize(MANIFESTS / "base" / part)
        assert docs, f"base/{part} renders nothing"
        strays = [(kind, name) for (kind, name), d in zip(ids(docs), docs)
                  if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") not in names]
        assert not strays, f"base/{part} holds objects of another workload: {strays}"


def test_the_base_is_the_parts_plus_the_namespace_wide_objects(base):
    from_parts = [i for part in PARTS for i in ids(kustomize(MANIFESTS / "base" / part))]
    assert len(from_parts) == len(set(from_parts)), "an object is defined in two parts"
    rendered = ids(base)
    missing = [i for i in from_parts if i not in rendered]
    assert not missing, f"the base drops objects of its parts: {missing}"
    own = [i for i in rendered if i not in from_parts]
    assert DEFAULT_DENY in own
    others = [(kind, name) for kind, name in own if (kind, name) != DEFAULT_DENY and kind not in MONITORING_KINDS]
    assert not others, f"workload objects belong in base/origin or base/collector, not the base itself: {others}"
    assert len(rendered) == len(set(rendered))
