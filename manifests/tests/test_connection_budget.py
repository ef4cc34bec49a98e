"""Connection budget (issue 12 #12): every PostgreSQL connection the deployment can hold at its peak fits
in what the RDS instance class Terraform picks accepts, minus what PostgreSQL and RDS reserve.

Peak = pods that can hold a pool at once x DATABASE_POOL_SIZE + the migration Job's connection, where the
pods are the HPA's maximum, the rollout's surge, and the old pods still draining: a deleted pod keeps
serving (and its pool) through preStop, drain and shutdown, and the Deployment controller no longer
counts it, so it starts the next surge pod meanwhile. Numbers with the repository's values (checked
below, so a change to any of them re-runs the sum):

    db.t4g.micro: 1 GiB; max_connections = LEAST(DBInstanceClassMemory / 9531392, 5000), where
      DBInstanceClassMemory is the memory left after the OS and RDS processes. Taken as at most
      1 GiB - 384 MiB (RDS reports ~250-410 MiB less than the class's memory) -> 70 (conservative)
    reserve: superuser_reserved_connections 3 + rds.rds_superuser_reserved_connections 2
      + 3 for an operator's psql/pg_dump during an incident                       -> 8
    pods: HPA max 10 + maxSurge 1 + draining 1 x ceil(50 s lifetime / 20 s shortest step) = 3 -> 14
      (a step is at least minReadySeconds 10 + the ALB's second health check 10 s later)
    14 pods x pool 4 + migration 1 = 57  <=  70 - 8 = 62
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import terraform_contract
from conftest import REPO, container, find

TERRAFORM_INFRA = REPO / "terraform" / "infra"
TERRAFORM_APP = REPO / "terraform" / "app"

# RDS for PostgreSQL's default (AWS RDS User Guide, "Maximum number of database connections").
BYTES_PER_CONNECTION = 9_531_392
MAX_CONNECTIONS_CAP = 5_000
# What RDS keeps of an instance's memory for the OS and its own processes; measured values lie between
# ~250 MiB (2 GiB classes) and ~410 MiB (8 GiB), so 384 MiB, or a tenth of larger classes, undercounts
# DBInstanceClassMemory and so max_connections: the check errs on the safe side.
def os_reserve_bytes(memory_bytes: int) -> int:
    return max(384 * 2**20, memory_bytes // 10)


GIB = 2**30
# Memory of the instance classes this project may pick (AWS instance specifications).
CLASS_MEMORY = {
    **{f"db.{family}.{size}": gib * GIB for family in ("t4g", "t3")
       for size, gib in (("micro", 1), ("small", 2), ("medium", 4), ("large", 8), ("xlarge", 16), ("2xlarge", 32))},
    **{f"db.{family}.{size}": gib * GIB for family in ("m6g", "m7g", "m8g", "m6i", "m7i", "m5")
       for size, gib in (("large", 8), ("xlarge", 16), ("2xlarge", 32))},
    **{f"db.{family}.{size}": gib * GIB for family in ("r6g", "r7g", "r8g", "r6i", "r7i", "r5")
       for size, gib in (("large", 16), ("xlarge", 32), ("2xlarge", 64))},
}

SUPERUSER_RESERVED = 3       # PostgreSQL default superuser_reserved_connections
RDS_SUPERUSER_RESERVED = 2   # RDS default rds.rds_superuser_reserved_connections
OPERATOR_HEADROOM = 3        # psql / pg_dump by a person during an incident
MIGRATION_CONNECTIONS = 1    # `counter-origin migrate` works on one connection


def max_connections(instance_class: str, parameters: dict[str, str]) -> int:
    if "max_connections" in parameters:
        return int(parameters["max_connections"])
    if instance_class not in CLASS_MEMORY:
        pytest.fail(f"{instance_class}: unknown memory size; add it to CLASS_MEMORY in {Path(__file__).name}")
    memory = CLASS_MEMORY[instance_class]
    return min((memory - os_reserve_bytes(memory)) // BYTES_PER_CONNECTION, MAX_CONNECTIONS_CAP)


def rds_facts() -> tuple[str, dict[str, str]]:
    try:
        tf = terraform_contract.load(TERRAFORM_INFRA)
        instance = terraform_contract.single(tf, "aws_db_instance")
        group = terraform_contract.single(tf, "aws_db_parameter_group")
    except (FileNotFoundError, AssertionError, KeyError) as error:
        pytest.fail(f"cannot read the RDS instance from terraform/infra: {error}")
    parameters = group.get("parameter", [])
    parameters = parameters if isinstance(parameters, list) else [parameters]
    return (terraform_contract.resolve(tf, instance["instance_class"]),
            {p["name"]: str(terraform_contract.resolve(tf, p["value"])) for p in parameters})


def shortest_rollout_step_s(deployment: dict) -> int:
    """A new pod becomes available no sooner than the ALB's healthy threshold (the first check may come
    at once, the next ones an interval apart) plus minReadySeconds."""
    tf = terraform_contract.load(TERRAFORM_APP)
    health = terraform_contract.single(tf, "aws_lb_target_group")["health_check"]
    health = health[0] if isinstance(health, list) else health
    interval = int(terraform_contract.resolve(tf, health.get("interval", 30)))
    threshold = int(terraform_contract.resolve(tf, health.get("healthy_threshold", 5)))
    return (threshold - 1) * interval + deployment["spec"].get("minReadySeconds", 0)


def absolute(value, of: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(of * int(value[:-1]) / 100)  # maxSurge rounds up
    return int(value)


def peak_pods(docs: list[dict]) -> int:
    deployment = find(docs, "Deployment", "counter-origin")
    hpa = find(docs, "HorizontalPodAutoscaler", "counter-origin")
    replicas = max(hpa["spec"]["maxReplicas"], deployment["spec"]["replicas"])
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    surge = absolute(rolling["maxSurge"], replicas)
    assert absolute(rolling["maxUnavailable"], replicas) == 0, "the sum below assumes old pods go only as new ones are ready"
    config = origin_config(docs)
    c = container(deployment, "origin")
    lifetime = (c["lifecycle"]["preStop"]["sleep"]["seconds"]
                + math.ceil((int(config["DRAIN_PERIOD_MS"]) + int(config["SHUTDOWN_TIMEOUT_MS"])) / 1000))
    lifetime = min(lifetime, deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    draining = surge * math.ceil(lifetime / shortest_rollout_step_s(deployment))
    return replicas + surge + draining


def origin_config(docs: list[dict]) -> dict:
    (source,) = container(find(docs, "Deployment", "counter-origin"), "origin")["envFrom"]
    return find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]


def test_peak_connections_fit_the_instance_class(prod):
    instance_class, parameters = rds_facts()
    limit = max_connections(instance_class, parameters)
    reserve = (int(parameters.get("superuser_reserved_connections", SUPERUSER_RESERVED))
               + int(parameters.get("rds.rds_superuser_reserved_connections", RDS_SUPERUSER_RESERVED))
               + OPERATOR_HEADROOM)
    pods = peak_pods(prod)
    pool = int(origin_config(prod)["DATABASE_POOL_SIZE"])
    peak = pods * pool + MIGRATION_CONNECTIONS
    assert peak <= limit - reserve, (
        f"{pods} pods x DATABASE_POOL_SIZE {pool} + {MIGRATION_CONNECTIONS} migration = {peak} connections, "
        f"but {instance_class} accepts {limit} - {reserve} reserved = {limit - reserve}"
    )


def test_the_repository_numbers_are_the_documented_ones(prod):
    # The module docstring states the sum; keep it true (or update it with the numbers).
    instance_class, parameters = rds_facts()
    assert (instance_class, max_connections(instance_class, parameters)) == ("db.t4g.micro", 70)
    assert peak_pods(prod) == 14 and int(origin_config(prod)["DATABASE_POOL_SIZE"]) == 4


def test_pool_is_a_writer_plus_a_few_readers(prod):
    # One writer commits every batch; reads are served from the cache and miss about once a second.
    pool = int(origin_config(prod)["DATABASE_POOL_SIZE"])
    assert 2 <= pool <= 4


def test_the_budget_can_fail():
    # Today's former values (pool 8, maxSurge 25 % of 10, no draining counted) already exceed it.
    assert (10 + 3) * 8 + 1 > max_connections("db.t4g.micro", {}) - (SUPERUSER_RESERVED + RDS_SUPERUSER_RESERVED + OPERATOR_HEADROOM)
    assert max_connections("db.t4g.micro", {"max_connections": "200"}) == 200
    assert max_connections("db.r6g.2xlarge", {}) == MAX_CONNECTIONS_CAP
