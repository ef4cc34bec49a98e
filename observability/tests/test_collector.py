"""The ADOT collector's configuration gives X-Ray what it needs to place the origin on EKS."""

from __future__ import annotations

from pathlib import Path

import yaml

import queries

BASE = queries.ROOT / "manifests/base"


def kustomization_files(directory: Path) -> list[Path]:
    """Every resource file the kustomization in `directory` includes, following sub-bases, so a moved file is
    found where kustomize finds it (and a file kustomize no longer ships is not tested as if it were)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        files.extend(kustomization_files(path) if path.is_dir() else [path])
    return files


def collector_config() -> dict:
    configs = [doc for path in kustomization_files(BASE) for doc in yaml.safe_load_all(path.read_text())
               if doc and doc.get("kind") == "ConfigMap" and "collector.yaml" in doc.get("data", {})]
    assert len(configs) == 1, f"expected one ConfigMap with collector.yaml in manifests/base, found {len(configs)}"
    return yaml.safe_load(configs[0]["data"]["collector.yaml"])


def test_traces_carry_the_eks_identity_xray_reads():
    """awsxrayexporter builds origin AWS::EKS::Container and the aws.eks block only from resource attributes
    cloud.platform=aws_eks and k8s.cluster.name; the origin itself cannot know the cluster."""
    config = collector_config()
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
