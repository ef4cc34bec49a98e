"""The ADOT collector's configuration gives X-Ray what it needs to place the origin on EKS."""

from __future__ import annotations

import yaml

import queries

COLLECTOR = queries.ROOT / "manifests/base/collector-configmap.yaml"


def test_traces_carry_the_eks_identity_xray_reads():
    """awsxrayexporter builds origin AWS::EKS::Container and the aws.eks block only from resource attributes
    cloud.platform=aws_eks and k8s.cluster.name; the origin itself cannot know the cluster."""
    config = yaml.safe_load(yaml.safe_load(COLLECTOR.read_text())["data"]["collector.yaml"])
    pipeline = config["service"]["pipelines"]["traces"]
    inserted = {}
    for name in pipeline["processors"]:
        if name.split("/")[0] == "resource":
            for attribute in config["processors"][name]["attributes"]:
                assert attribute["action"] in {"insert", "upsert"}, attribute
                inserted[attribute["key"]] = attribute["value"]
    assert inserted.get("cloud.provider") == "aws"
    assert inserted.get("cloud.platform") == "aws_eks"
    assert inserted.get("k8s.cluster.name") == "${env:K8S_CLUSTER_NAME}"
    assert pipeline["processors"][-1] == "batch", "batch last, after every attribute is in place"
