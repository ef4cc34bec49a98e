"""The first Argo CD sync, in order (issue 12 #18): the migration (PreSync hook) before anything, then
the Service and the TargetGroupBinding, then the Deployment's pods. The AWS Load Balancer Controller's
webhook injects the ALB readiness gate only into pods created while a TargetGroupBinding selects them:
pods created before the binding would count as ready without the ALB ever checking them."""

from __future__ import annotations

from conftest import find

HOOK = "argocd.argoproj.io/hook"
WAVE = "argocd.argoproj.io/sync-wave"


def annotations(doc: dict) -> dict:
    return doc["metadata"].get("annotations") or {}


def wave(doc: dict) -> int:
    return int(annotations(doc).get(WAVE, "0"))


def phase(doc: dict) -> str:
    return annotations(doc).get(HOOK, "Sync")


def order(doc: dict) -> tuple[int, int]:
    """Argo CD's sort key across the sync: phase first (PreSync < Sync < PostSync), then wave."""
    return ({"PreSync": 0, "Sync": 1, "PostSync": 2}[phase(doc)], wave(doc))


def test_binding_and_service_come_before_the_pods(prod):
    deployment = find(prod, "Deployment", "counter-origin")
    binding = find(prod, "TargetGroupBinding", "counter-origin")
    service = find(prod, "Service", binding["spec"]["serviceRef"]["name"])
    assert order(binding) < order(deployment), "pods would be created before their readiness gate exists"
    assert order(service) <= order(binding), "the binding's Service must exist no later than the binding"


def test_the_namespace_precedes_everything_synced_into_it(prod):
    namespace = find(prod, "Namespace", "counter")
    later = [d for d in prod if d["kind"] not in ("Namespace", "StorageClass") and phase(d) == "Sync"]
    assert all(order(namespace) < order(d) for d in later), "an object would be applied before its namespace"


def test_migration_runs_before_the_binding_and_the_pods(prod):
    job = find(prod, "Job", "counter-migrate")
    assert phase(job) == "PreSync"
    for kind in ("TargetGroupBinding", "Deployment"):
        assert order(job) < order(find(prod, kind, "counter-origin")), kind


def test_only_the_migration_and_its_prerequisites_are_hooks(prod):
    hooks = {(d["kind"], d["metadata"]["name"]) for d in prod if HOOK in annotations(d)}
    assert hooks == {("Job", "counter-migrate"), ("ServiceAccount", "counter-migrate"),
                     ("NetworkPolicy", "counter-migrate")}


def test_the_order_check_can_fail():
    early = {"metadata": {"annotations": {WAVE: "-1"}}}
    late = {"metadata": {}}
    hook = {"metadata": {"annotations": {HOOK: "PreSync", WAVE: "5"}}}
    assert order(early) < order(late) < order({"metadata": {"annotations": {WAVE: "1"}}})
    assert order(hook) < order(early)
