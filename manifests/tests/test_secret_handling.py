"""No Secret is ever created with a client-side `kubectl apply` (issue 12 #16): that stores the whole
object, plaintext data included, in the `kubectl.kubernetes.io/last-applied-configuration` annotation,
readable by anyone who may read the object's metadata. `kubectl create` or `kubectl apply
--server-side` store no such copy. Checked on every command this part of the repository tells an
operator to run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import MANIFESTS

SECRET = re.compile(r"create secret|kind:\s*\"?Secret\b|secret generic|secret tls", re.IGNORECASE)
CLIENT_SIDE_APPLY = re.compile(r"kubectl\b[^|;&]*\bapply\b(?![^|;&]*--server-side)")


def commands(text: str) -> list[str]:
    """Logical shell lines: backslash continuations joined (a pipeline spans them)."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def client_side_secret_applies(text: str) -> list[str]:
    return [line.strip() for line in commands(text) if SECRET.search(line) and CLIENT_SIDE_APPLY.search(line)]


DOCUMENTS = sorted(p for p in MANIFESTS.rglob("*") if p.is_file() and p.suffix in (".md", ".yaml", ".yml", ".sh", ".env")
                   and "tests" not in p.relative_to(MANIFESTS).parts)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_no_secret_is_applied_client_side(path: Path):
    found = client_side_secret_applies(path.read_text())
    assert not found, f"{path.relative_to(MANIFESTS)}: Secret applied client-side (plaintext kept in an annotation): {found}"


def test_the_check_can_fail():
    recipe = ("... | kubectl -n counter create secret generic db --from-file=URL=/dev/stdin \\\n"
              "      --dry-run=client -o yaml | kubectl apply -f -\n")
    assert client_side_secret_applies(recipe)
    assert not client_side_secret_applies(recipe.replace("kubectl apply", "kubectl apply --server-side"))
    assert not client_side_secret_applies("kubectl -n monitoring create secret generic grafana-admin --from-file=p=/dev/stdin")
    assert not client_side_secret_applies("kubectl apply -k manifests/argocd")
