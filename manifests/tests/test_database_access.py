"""Passwordless database access (issue 13), as deployed: the serving pods sign in to RDS as counter_app
with IAM tokens and hold no password, and the schema is migrated by a separate PreSync Job that reads
the master secret from Secrets Manager itself. Also the release pin: one `images:` entry moves both."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import MANIFESTS, container, find, kustomize

APP_ROLE = "counter_app"  # TEAM.md contract: DATABASE_APP_ROLE default, member of rds_iam
POD_IDENTITY_AGENT = "169.254.170.23/32"


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def origin_environment(docs: list[dict]) -> dict[str, str]:
    """What the origin process sees: its generated ConfigMap plus the literal env (env wins)."""
    c = container(find(docs, "Deployment", "counter-origin"), "origin")
    (source,) = c["envFrom"]
    return {**find(docs, "ConfigMap", source["configMapRef"]["name"])["data"], **env_of(c)}


def migrate_container(docs: list[dict]) -> dict:
    return container(find(docs, "Job", "counter-migrate"), "migrate")


def assert_passwordless_url(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme in ("postgres", "postgresql"), url
    assert parts.password is None and ":" not in parts.netloc.split("@")[0], "DATABASE_URL carries a password"
    assert parts.username == APP_ROLE, f"the origin must connect as {APP_ROLE}, not {parts.username!r}"
    assert parts.hostname and parts.port and parts.path.strip("/"), url
    # IAM authentication requires TLS; the origin verifies the chain and host name with sslmode=require.
    assert parse_qs(parts.query).get("sslmode") == ["require"], url


# A URL with a password in it, anywhere in a rendered object (a value, an annotation, a ConfigMap).
_URL_WITH_PASSWORD = re.compile(r"postgres(?:ql)?://[^/@\s:]+:[^@\s]+@")


def scalars(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from scalars(value)
    elif isinstance(node, list):
        for value in node:
            yield from scalars(value)
    elif isinstance(node, str):
        yield node


# --- the serving pods ----------------------------------------------------------------------------


def test_no_rendered_object_carries_a_database_password(prod):
    assert not [d for d in prod if d["kind"] == "Secret"], "the prod overlay renders a Secret"
    leaks = [(d["kind"], d["metadata"]["name"]) for d in prod for v in scalars(d) if _URL_WITH_PASSWORD.search(v)]
    assert not leaks, f"database URLs with a password in {leaks}"


def test_the_password_detector_can_fail():
    assert _URL_WITH_PASSWORD.search("postgres://counter_admin:s3cr%2Ft@db.example:5432/counter")
    assert not _URL_WITH_PASSWORD.search("postgres://counter_app@db.example:5432/counter?sslmode=require")


def test_origin_signs_in_with_iam_as_the_application_role(prod):
    environment = origin_environment(prod)
    assert environment["DATABASE_AUTH"] == "iam"
    assert_passwordless_url(environment["DATABASE_URL"])
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", environment["AWS_REGION"]), "IAM tokens are signed per region"
    assert environment["DATABASE_CA_FILE"].startswith("/etc/rds-ca/")
    # Serving pods never run DDL: they stay unready until the migration Job brought the schema up.
    assert environment["SCHEMA_MIGRATE_ON_START"] == "false"
    assert "DATABASE_MASTER_SECRET_ARN" not in environment, "the serving pods must not know the master secret"


def test_the_database_url_check_can_fail():
    for bad in ("postgres://counter_admin:pw@db:5432/counter?sslmode=require",
                "postgres://counter_admin@db:5432/counter?sslmode=require",
                "postgres://counter_app@db:5432/counter"):
        with pytest.raises(AssertionError):
            assert_passwordless_url(bad)


def test_serving_pods_reference_no_secret(prod):
    spec = find(prod, "Deployment", "counter-origin")["spec"]["template"]["spec"]
    text = yaml.safe_dump(spec)
    assert "secretKeyRef" not in text and "secretRef" not in text
    assert not [v for v in spec.get("volumes", []) if "secret" in v or "projected" in v]
    assert find(prod, "ServiceAccount", "counter-origin")["automountServiceAccountToken"] is False


# --- the migration Job ---------------------------------------------------------------------------


def annotations(doc: dict) -> dict:
    return doc["metadata"].get("annotations") or {}


def test_migration_is_a_presync_hook_with_a_delete_policy(prod):
    job = find(prod, "Job", "counter-migrate")
    assert annotations(job)["argocd.argoproj.io/hook"] == "PreSync"
    policies = set(annotations(job)["argocd.argoproj.io/hook-delete-policy"].split(","))
    assert policies and policies <= {"BeforeHookCreation", "HookSucceeded", "HookFailed"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["activeDeadlineSeconds"] > 0, "a hung migration would hold the sync forever"
    # Everything the hook needs at PreSync time is a hook itself, created one wave earlier: on the
    # first sync nothing of the Sync phase exists yet.
    job_wave = int(annotations(job).get("argocd.argoproj.io/sync-wave", "0"))
    for kind in ("ServiceAccount", "NetworkPolicy"):
        dependency = find(prod, kind, "counter-migrate")
        assert annotations(dependency).get("argocd.argoproj.io/hook") == "PreSync", kind
        assert int(annotations(dependency).get("argocd.argoproj.io/sync-wave", "0")) < job_wave, kind
    assert pod["serviceAccountName"] == "counter-migrate"


def test_migration_runs_the_origins_image_and_subcommand(prod):
    origin = container(find(prod, "Deployment", "counter-origin"), "origin")
    migrate = migrate_container(prod)
    assert migrate["image"] == origin["image"], "the schema would not be the one the new pods expect"
    assert migrate.get("args") == ["migrate"] and "command" not in migrate


def test_migration_reads_the_master_secret_from_secrets_manager(prod):
    environment = env_of(migrate_container(prod))
    assert re.fullmatch(r"arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+", environment["DATABASE_MASTER_SECRET_ARN"])
    assert_passwordless_url(environment["DATABASE_URL"])
    assert environment["DATABASE_URL"] == origin_environment(prod)["DATABASE_URL"]
    assert environment["AWS_REGION"] == origin_environment(prod)["AWS_REGION"]
    assert environment["DATABASE_APP_ROLE"] == APP_ROLE
    assert environment["DATABASE_CA_FILE"] == origin_environment(prod)["DATABASE_CA_FILE"]


def test_migration_reads_nothing_the_sync_phase_creates(prod):
    # A PreSync pod starts before this sync's ConfigMaps (content-hashed names) exist.
    pod = find(prod, "Job", "counter-migrate")["spec"]["template"]["spec"]
    c = migrate_container(prod)
    assert "envFrom" not in c and all("valueFrom" not in e for e in c["env"])
    synced = {d["metadata"]["name"] for d in prod if d["kind"] in ("ConfigMap", "Secret")}
    mounted = {v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
    assert mounted == {"rds-ca-bundle"} and not mounted & synced


def test_migration_pod_is_never_a_target_of_the_alb(prod):
    # The LBC registers (and gates readiness of) every pod the bound Service selects.
    selector = find(prod, "Service", "counter-origin")["spec"]["selector"]
    labels = find(prod, "Job", "counter-migrate")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= labels.items()


def test_migration_egress_is_dns_postgres_pod_identity_and_https(prod):
    policy = find(prod, "NetworkPolicy", "counter-migrate")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "counter-migrate"}
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not policy["spec"].get("ingress")
    rules = {}
    for rule in policy["spec"]["egress"]:
        (peer,) = rule["to"]
        ports = frozenset((p["port"], p.get("protocol", "TCP")) for p in rule["ports"])
        rules[ports] = peer
    assert rules[frozenset({(53, "UDP"), (53, "TCP")})]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    vpc = find(prod, "NetworkPolicy", "counter-origin")["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"]
    assert rules[frozenset({(5432, "TCP")})] == {"ipBlock": {"cidr": vpc}}
    assert rules[frozenset({(80, "TCP")})] == {"ipBlock": {"cidr": POD_IDENTITY_AGENT}}
    # Secrets Manager's regional endpoint is public: HTTPS cannot be narrowed to an address range.
    assert rules[frozenset({(443, "TCP")})] == {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
    assert len(rules) == 4


# --- one release pin for both ----------------------------------------------------------------------


def test_the_release_pin_moves_the_deployment_and_the_job_together(tmp_path):
    # What the release workflow does (`kustomize edit set image counter-origin=…:sha-…` rewrites the
    # overlay's one `images:` entry), done to a copy, then rendered.
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy, ignore=shutil.ignore_patterns("tests"))
    overlay = copy / "overlays" / "prod" / "kustomization.yaml"
    kustomization = yaml.safe_load(overlay.read_text())
    (entry,) = [i for i in kustomization["images"] if i["name"] == "counter-origin"]
    entry["newTag"] = "sha-" + "f" * 40
    overlay.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    docs = kustomize(copy / "overlays" / "prod")
    images = {container(find(docs, "Deployment", "counter-origin"), "origin")["image"],
              migrate_container(docs)["image"]}
    assert images == {f"{entry['newName']}:sha-{'f' * 40}"}
