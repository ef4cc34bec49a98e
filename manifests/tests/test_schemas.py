"""Every rendered object is schema-valid: core kinds against Kubernetes 1.35's OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail), custom resources against their CRDs' schemas."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

import crd_schema

KUBERNETES_VERSION = "1.35.0"
CRD_VALIDATORS = crd_schema.load_validators()


def _is_custom(doc: dict) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CRD_VALIDATORS


def _validate(doc: dict) -> list[str]:
    if _is_custom(doc):
        return crd_schema.errors(CRD_VALIDATORS[(doc["apiVersion"], doc["kind"])], doc)
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no Kubernetes {KUBERNETES_VERSION} schema and no vendored CRD for {doc['apiVersion']} {doc['kind']}"]
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.path)) or '<root>'}: {error.message}"]
    return []


@pytest.mark.parametrize("render", ["base", "prod", "argocd"])
def test_every_rendered_object_is_schema_valid(render, request):
    docs = request.getfixturevalue(render)
    assert docs, f"{render} rendered nothing"
    problems = {f"{d['kind']}/{d['metadata']['name']}": _validate(d) for d in docs}
    problems = {name: errs for name, errs in problems.items() if errs}
    assert not problems, f"schema errors in the {render} render: {problems}"


def test_the_custom_resources_are_the_expected_ones(prod, argocd):
    kinds = {d["kind"] for d in prod + argocd if _is_custom(d)}
    assert kinds == {"ServiceMonitor", "PrometheusRule", "TargetGroupBinding", "AlertmanagerConfig",
                     "Application", "AppProject"}


# The validators must be able to fail, or the test above proves nothing.
def test_crd_validation_rejects_unknown_fields_and_bad_values(prod):
    tgb = copy.deepcopy(next(d for d in prod if d["kind"] == "TargetGroupBinding"))
    assert not _validate(tgb)
    tgb["spec"]["targetType"] = "pod"
    tgb["spec"]["targetGroupNmae"] = "typo"
    messages = " ".join(_validate(tgb))
    assert "'pod' is not one of" in messages and "targetGroupNmae" in messages


def test_core_validation_rejects_unknown_fields(prod):
    deployment = copy.deepcopy(next(d for d in prod if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    assert _validate(deployment)
