"""Cross-layer references: outputs read through terraform_remote_state exist in the layer that
writes them, from the state key that layer really uses; bootstrap gives the workflows what they read."""

import re

import pytest

from conftest import REPO

# (reader, alias used in its locals, writer)
READS = [("infra", "bootstrap", "bootstrap"), ("app", "infra", "infra")]


@pytest.mark.parametrize("reader,alias,writer", READS)
def test_remote_state_reads_the_writer_layers_state_key(layers, reader, alias, writer):
    state = layers[reader].data("terraform_remote_state")[writer]
    writer_key = layers[writer].terraform_block()["backend"][0]["s3"]["key"]
    assert state["backend"] == "s3"
    assert state["config"]["key"] == writer_key
    assert state["config"]["bucket"] == "${var.state_bucket}"


@pytest.mark.parametrize("reader,alias,writer", READS)
def test_every_remote_output_read_exists(layers, reader, alias, writer):
    read = layers[reader].references(f"local.{alias}")
    read |= layers[reader].references(f"data.terraform_remote_state.{writer}.outputs")
    assert read, f"{reader} reads nothing from {writer}?"
    written = layers[writer].outputs().keys()
    missing = read - written
    assert not missing, f"{reader} reads {sorted(missing)} from {writer}, which has no such outputs"


def test_local_alias_points_at_the_remote_state(layers):
    assert layers["infra"].locals()["bootstrap"] == "${data.terraform_remote_state.bootstrap.outputs}"
    assert layers["app"].locals()["infra"] == "${data.terraform_remote_state.infra.outputs}"


WORKFLOW_VARIABLES = {
    "AWS_REGION",
    "TF_STATE_BUCKET",
    "AWS_ROLE_TERRAFORM_PLAN",
    "AWS_ROLE_TERRAFORM_APPLY",
    "AWS_ROLE_RELEASE",
    "ECR_REGISTRY",
    "ECR_REPOSITORY",
    "EKS_CLUSTER_NAME",
}


def github_variables(layers):
    body = layers["bootstrap"].outputs()["github_variables"]["value"]
    return body


def test_bootstrap_hands_the_workflows_their_variables(layers):
    assert set(github_variables(layers)) == WORKFLOW_VARIABLES


def test_workflows_only_read_variables_bootstrap_provides(layers):
    workflows = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
    if not workflows:
        pytest.fail("no .github/workflows yet: nothing to check the bootstrap outputs against")
    provided = set(github_variables(layers))
    used = set()
    for path in workflows:
        used |= set(re.findall(r"\bvars\.([A-Z0-9_]+)", path.read_text()))
    missing = used - provided
    assert not missing, f"workflows read repository variables {sorted(missing)} that bootstrap's github_variables does not provide"


def test_workflows_set_every_required_variable(layers):
    """A variable without a default must reach CI plans and applies as TF_VAR_<name>, or every
    non-interactive run of that layer stops at 'No value for required variable'."""
    workflows = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
    if not workflows:
        pytest.fail("no .github/workflows yet: nothing to check the required variables against")
    provided = set()
    for path in workflows:
        provided |= set(re.findall(r"\bTF_VAR_([a-z0-9_]+)", path.read_text()))
    for layer in layers.values():
        required = {name for name, spec in layer.variables().items() if "default" not in spec}
        missing = required - provided
        assert not missing, f"{layer.name}: required variables {sorted(missing)} are never set as TF_VAR_ in .github/workflows"
