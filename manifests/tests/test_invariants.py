"""Invariants that tie files together (manifests, origin source, Terraform). Each one guards a failure
mode seen in production systems: dropped requests on rollout, 502s from keep-alive races, probes that
404, drains that never finish, credentials or tokens where they do not belong."""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path

import pytest

import terraform_contract
from conftest import MANIFESTS, REPO, container, find

ORIGIN_SRC = REPO / "origin" / "src"


@pytest.fixture(scope="session")
def alb() -> dict:
    try:
        return terraform_contract.alb_facts()
    except (FileNotFoundError, AssertionError, KeyError) as error:
        pytest.fail(f"cannot read the ALB contract from terraform/app: {error}")


def origin_config(docs: list[dict]) -> dict:
    """The ConfigMap the origin container actually reads (its name carries a content hash)."""
    (source,) = origin_container(docs)["envFrom"]
    return find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]


def origin_container(docs: list[dict]) -> dict:
    return container(find(docs, "Deployment", "counter-origin"), "origin")


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def named_port(c: dict, name: str) -> int:
    return next(p["containerPort"] for p in c["ports"] if p["name"] == name)


def prestop_seconds(docs: list[dict]) -> int:
    return origin_container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]


CLUSTER_SCOPED = {"Namespace", "StorageClass"}


# --- shutdown and connection timing -------------------------------------------------------------


def test_prestop_covers_the_alb_deregistration_delay(prod, alb):
    assert prestop_seconds(prod) >= alb["deregistration_delay"], (
        "the pod would stop serving while the ALB may still route new requests to it"
    )


def test_prestop_drain_and_shutdown_fit_in_the_grace_period(prod):
    config = origin_config(prod)
    grace = find(prod, "Deployment", "counter-origin")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    needed = prestop_seconds(prod) + int(config["DRAIN_PERIOD_MS"]) / 1000 + int(config["SHUTDOWN_TIMEOUT_MS"]) / 1000
    assert needed < grace, f"preStop + drain + shutdown = {needed} s, not below the grace period {grace} s (SIGKILL)"


def test_origin_keepalive_outlives_the_alb_idle_timeout(prod, alb):
    keepalive = int(origin_config(prod)["KEEPALIVE_IDLE_TIMEOUT_S"])
    assert keepalive > alb["idle_timeout"], "the origin would close idle connections the ALB still reuses (502s)"


# --- ports, routes and what the ALB can reach -----------------------------------------------------


@pytest.mark.parametrize("render", ["base", "prod"])
def test_container_service_and_configured_ports_agree(render, request):
    docs = request.getfixturevalue(render)
    c = origin_container(docs)
    config = origin_config(docs)
    service = find(docs, "Service", "counter-origin")
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    for name, variable in (("http", "LISTEN_ADDR"), ("metrics", "METRICS_ADDR")):
        target = by_name[name]["targetPort"]
        target = named_port(c, target) if isinstance(target, str) else target
        assert named_port(c, name) == target == port_of(config[variable]), f"{name} port mismatch"


def test_the_alb_binds_only_the_public_port(prod, alb):
    c = origin_container(prod)
    tgb = find(prod, "TargetGroupBinding", "counter-origin")
    service = find(prod, "Service", "counter-origin")
    ref = tgb["spec"]["serviceRef"]
    assert ref["name"] == service["metadata"]["name"]
    bound = next(p for p in service["spec"]["ports"] if ref["port"] in (p["name"], p["port"]))
    assert bound["name"] == "http", "/metrics must never be behind the ALB"
    assert tgb["spec"]["targetType"] == alb["target_type"] == "ip"
    assert alb["protocol"] == "HTTP"
    assert alb["port"] == named_port(c, "http") != named_port(c, "metrics")
    opened = [p["port"] for rule in tgb["spec"]["networking"]["ingress"] for p in rule["ports"]]
    assert opened == [named_port(c, "http")]
    assert tgb["spec"]["targetGroupName"] == alb["name"], "TargetGroupBinding names another target group"


def origin_routes() -> set[str]:
    sources = list(ORIGIN_SRC.rglob("*.rs")) if ORIGIN_SRC.is_dir() else []
    text = "\n".join(p.read_text() for p in sources)
    routes = set(re.findall(r'"(/[a-z]+)"', text))
    if not {"/healthz", "/readyz"} & routes:
        pytest.fail(f"no route literals such as \"/healthz\" found in {ORIGIN_SRC}: is the origin's router there yet?")
    return routes


def test_probe_paths_are_routes_of_the_origin(prod, alb):
    routes = origin_routes()
    c = origin_container(prod)
    probed = {c[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    probed.add(alb["health_check_path"])
    assert probed <= routes, f"probe paths {sorted(probed - routes)} are not routes in origin/src"
    # Liveness must not depend on the database; readiness and the ALB must.
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == alb["health_check_path"] == "/readyz"


# --- releases ------------------------------------------------------------------------------------


def test_prod_image_is_pinned_to_a_commit(prod):
    image = origin_container(prod)["image"]
    name, _, tag = image.rpartition(":")
    assert name.endswith("/counter-origin"), image
    assert re.fullmatch(r"sha-[0-9a-f]{40}", tag), f"prod image {image} is not pinned to sha-<git sha>"


def test_no_image_floats(prod):
    for name, spec in pod_specs(prod):
        for c in spec["containers"]:
            tag = c["image"].rpartition(":")[2] if ":" in c["image"].rsplit("/", 1)[-1] else ""
            assert tag and tag not in ("latest", "stable", "main"), f"{name}/{c['name']} image {c['image']} floats"


# --- availability --------------------------------------------------------------------------------


def allowed_disruptions(pdb: dict, replicas: int) -> int:
    spec = pdb["spec"]

    def absolute(value, round_up: bool) -> int:
        if isinstance(value, str) and value.endswith("%"):
            exact = replicas * int(value[:-1]) / 100
            return math.ceil(exact) if round_up else math.floor(exact)
        return int(value)

    if "maxUnavailable" in spec:
        return absolute(spec["maxUnavailable"], round_up=True)
    return replicas - absolute(spec["minAvailable"], round_up=True)


@pytest.mark.parametrize("render", ["base", "prod"])
def test_pdb_lets_a_node_drain_proceed_at_the_hpa_minimum(render, request):
    docs = request.getfixturevalue(render)
    minimum = find(docs, "HorizontalPodAutoscaler", "counter-origin")["spec"]["minReplicas"]
    assert minimum >= 2, "a single replica is an outage on every drain"
    assert allowed_disruptions(find(docs, "PodDisruptionBudget", "counter-origin"), minimum) >= 1


def test_replicas_are_spread_over_zones_on_graviton(prod):
    deployment = find(prod, "Deployment", "counter-origin")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    zone = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone and zone[0]["whenUnsatisfiable"] == "DoNotSchedule"


def test_namespace_gets_the_alb_readiness_gate(prod):
    namespace = find(prod, "Namespace", "counter")
    assert namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in prod if d["kind"] not in CLUSTER_SCOPED} == {"counter"}
    assert all("namespace" not in d["metadata"] for d in prod if d["kind"] in CLUSTER_SCOPED)


# --- least privilege -----------------------------------------------------------------------------


POD_IDENTITY_AGENT = ("169.254.170.23/32", 80)


def test_origin_egress_is_dns_postgres_the_collector_and_pod_identity_only(prod):
    policy = find(prod, "NetworkPolicy", "counter-origin")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), "an egress rule without peers allows every destination"
        ports = {(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]}
        allowed |= ports
        peer = rule["to"][0]
        if ports <= {(53, "UDP"), (53, "TCP")}:
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        elif ports == {(5432, "TCP")}:
            assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).is_private
        elif ports == {(80, "TCP")}:
            # The EKS Pod Identity agent: credentials for signing RDS IAM tokens (DATABASE_AUTH=iam).
            assert (peer["ipBlock"]["cidr"], 80) == POD_IDENTITY_AGENT
        else:
            assert peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "adot-collector"}}}
    assert allowed == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (4317, "TCP"), (4318, "TCP"), (80, "TCP")}
    collector = find(prod, "Service", "adot-collector")
    assert {p["port"] for p in collector["spec"]["ports"]} == {4317, 4318}
    assert port_of(origin_config(prod)["OTEL_EXPORTER_OTLP_ENDPOINT"]) == 4317
    assert "adot-collector" in origin_config(prod)["OTEL_EXPORTER_OTLP_ENDPOINT"]


def test_namespace_denies_by_default(prod):
    deny = find(prod, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


@pytest.mark.parametrize("render", ["base", "prod"])
def test_no_service_account_token_is_mounted(render, request):
    docs = request.getfixturevalue(render)
    for d in docs:
        if d["kind"] == "ServiceAccount":
            assert d.get("automountServiceAccountToken") is False, d["metadata"]["name"]
    for name, spec in pod_specs(docs):
        assert spec.get("automountServiceAccountToken") is False, name


@pytest.mark.parametrize("render", ["base", "prod", "argocd"])
def test_no_credentials_are_rendered(render, request):
    docs = request.getfixturevalue(render)
    secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret" and (d.get("data") or d.get("stringData"))]
    assert not secrets, f"Secrets with data in Git: {secrets}"
    # No pod reads any Secret: the origin signs in with IAM, the migration fetches the master secret
    # from Secrets Manager itself, the collector uses its IAM role.
    referenced = {
        (name, c["name"])
        for name, spec in pod_specs(docs) for c in spec["containers"]
        for source in [e.get("valueFrom", {}) for e in c.get("env", [])] + c.get("envFrom", [])
        if "secretKeyRef" in source or "secretRef" in source
    } | {(name, v["name"]) for name, spec in pod_specs(docs) for v in spec.get("volumes", []) if "secret" in v}
    assert not referenced, f"pods reading Secrets: {sorted(referenced)}"


@pytest.mark.parametrize("render", ["base", "prod"])
def test_every_container_is_hardened(render, request):
    for name, spec in pod_specs(request.getfixturevalue(render)):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], name


@pytest.mark.parametrize("render", ["base", "prod"])
def test_env_references_only_variables_defined_before_them(render, request):
    # Kubernetes expands $(VAR) only for variables listed earlier; otherwise the literal text is kept.
    for name, spec in pod_specs(request.getfixturevalue(render)):
        for c in spec["containers"]:
            seen: set[str] = set()
            for e in c.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                    assert ref in seen, f"{name}/{c['name']}: {e['name']} uses $({ref}) before it is defined"
                seen.add(e["name"])


# --- environment bindings ------------------------------------------------------------------------


def scalar_values(node):
    if isinstance(node, dict):
        for key, value in node.items():
            # An env entry's name is the variable, not a value (markers may share its spelling).
            if key == "name" and ("value" in node or "valueFrom" in node):
                continue
            yield from scalar_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from scalar_values(value)
    else:
        yield node


def test_prod_environment_values_are_all_substituted_and_well_formed(prod):
    # The base carries upper-case markers where overlays/prod/aws.env supplies the value.
    env_file = (MANIFESTS / "overlays" / "prod" / "aws.env").read_text().splitlines()
    markers = {line.split("=", 1)[0] for line in env_file if "=" in line and not line.startswith("#")}
    leftovers = {value for value in scalar_values(prod) if value in markers}
    assert not leftovers, f"unsubstituted environment markers in the prod render: {sorted(leftovers)}"
    tgb = find(prod, "TargetGroupBinding", "counter-origin")
    group = tgb["spec"]["networking"]["ingress"][0]["from"][0]["securityGroup"]["groupID"]
    assert re.fullmatch(r"sg-[0-9a-f]{8}(?:[0-9a-f]{9})?", group)
    role = find(prod, "ServiceAccount", "adot-collector")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role)
    region = container(find(prod, "Deployment", "adot-collector"), "collector")["env"][0]["value"]
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region)


def test_traces_carry_the_eks_identity(prod):
    # Issue 19 #4: the X-Ray exporter builds the segment's aws.eks block (and the EKS origin) only from
    # cloud.platform=aws_eks with k8s.cluster.name; $(VAR) expands only from variables listed earlier.
    env = [(e["name"], e.get("value")) for e in origin_container(prod)["env"]]
    values = dict(env)
    attributes = dict(pair.split("=", 1) for pair in values["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes["cloud.platform"] == "aws_eks" and attributes["cloud.provider"] == "aws"
    names = [name for name, _ in env]
    for key, variable in (("k8s.cluster.name", "K8S_CLUSTER_NAME"), ("cloud.region", "AWS_REGION")):
        assert attributes[key] == f"$({variable})", key
        assert names.index(variable) < names.index("OTEL_RESOURCE_ATTRIBUTES"), f"{variable} is not expanded"
    cluster = values["K8S_CLUSTER_NAME"]
    assert re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", cluster), f"not an EKS cluster name: {cluster!r}"


def test_argocd_project_admits_exactly_what_the_overlay_renders(prod, argocd):
    application = find(argocd, "Application", "counter-prod")
    project = find(argocd, "AppProject", application["spec"]["project"])
    assert (MANIFESTS.parent / application["spec"]["source"]["path"]).resolve() == (MANIFESTS / "overlays" / "prod")
    assert application["spec"]["destination"]["namespace"] == "counter"
    assert project["spec"]["destinations"] == [application["spec"]["destination"]]
    assert project["spec"]["sourceRepos"] == [application["spec"]["source"]["repoURL"]]
    policy = application["spec"]["syncPolicy"]
    assert policy["automated"]["prune"] and policy["automated"]["selfHeal"] and policy["retry"]["backoff"]
    allowed = {(g["group"], g["kind"]) for g in project["spec"]["namespaceResourceWhitelist"]}
    allowed_cluster = {(g["group"], g["kind"]) for g in project["spec"]["clusterResourceWhitelist"]}
    rendered = {(d["apiVersion"].rpartition("/")[0], d["kind"]) for d in prod}
    assert rendered - allowed - allowed_cluster == set(), "the AppProject would refuse part of the overlay"
    assert allowed | allowed_cluster == rendered, "the AppProject admits kinds the overlay never renders"


@pytest.mark.parametrize("overlay", ["base", "prod"])
def test_origin_configuration_changes_roll_the_pods(request, overlay):
    # A plain ConfigMap changes under running pods, which never re-read their environment; a name
    # that carries the content hash makes every edit a new pod template, so the Deployment rolls.
    docs = request.getfixturevalue(overlay)
    (source,) = origin_container(docs)["envFrom"]
    name = source["configMapRef"]["name"]
    assert re.fullmatch(r"counter-origin-[a-z0-9]{10}", name), f"origin ConfigMap {name!r} has no content hash"
    assert "LISTEN_ADDR" in find(docs, "ConfigMap", name)["data"]
