"""Every `${env:NAME}` the ADOT collector's configuration reads is set on its container in the
rendered prod overlay, to a real value (not the base's placeholder): an unset variable expands to
an empty string, and the traces would carry `k8s.cluster.name=""` without anyone noticing."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import container, find

AWS_ENV = Path(__file__).resolve().parents[1] / "overlays" / "prod" / "aws.env"


def test_every_variable_the_collector_config_reads_is_set(prod):
    config = find(prod, "ConfigMap", "adot-collector")
    text = "\n".join(config["data"].values())
    wanted = set(re.findall(r"\$\{env:([A-Z0-9_]+)\}", text))
    assert "K8S_CLUSTER_NAME" in wanted, wanted
    collector = container(find(prod, "Deployment", "adot-collector"), "collector")
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in collector.get("env", [])}
    missing = sorted(wanted - env.keys())
    assert not missing, f"the collector config reads {missing}, which its container does not set"
    aws_env = dict(
        line.split("=", 1)
        for line in AWS_ENV.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert env["K8S_CLUSTER_NAME"] == aws_env["CLUSTER_NAME"], env["K8S_CLUSTER_NAME"]
