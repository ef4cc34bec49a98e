"""Policy checks with checkov on what Argo CD actually applies (the prod overlay and the Argo CD
objects, rendered). Zero findings: every exception is a `checkov.io/skipN: CHECK=reason` annotation
next to the object it concerns, and a skip without a reason fails here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml


def test_checkov_finds_nothing_unexplained(prod, argocd, tmp_path):
    checkov = os.environ.get("CHECKOV") or shutil.which("checkov")
    if checkov is None:
        pytest.fail("checkov is required: run scripts/test-manifests.sh (requirements-checkov.txt)")
    for name, docs in (("prod", prod), ("argocd", argocd)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = subprocess.run(
        [checkov, "--directory", str(tmp_path), "--framework", "kubernetes", "--skip-download",
         "--output", "json", "--quiet", "--compact"],
        capture_output=True, text=True, check=False,
    )
    assert result.stdout.strip(), f"checkov produced no report:\n{result.stderr}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov findings:\n" + "\n".join(failed)
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 50, f"checkov ran only {passed} checks: did it parse the render?"


def test_every_policy_exception_carries_its_reason(prod, argocd):
    for doc in prod + argocd:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                match = re.fullmatch(r"(CKV2?_K8S_\d+)=(.+)", value)
                assert match and len(match.group(2).split()) >= 5, f"{doc['kind']}/{doc['metadata']['name']} {key}"
