"""Layer conventions: file layout, one Terraform version, identical provider pins, variables."""

import re

import pytest

from conftest import LAYERS, MODULES, TERRAFORM, Layer

EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@pytest.mark.parametrize("layer", LAYERS + MODULES)
def test_layer_has_the_four_standard_files(layer):
    present = {p.name for p in (TERRAFORM / layer).glob("*.tf")}
    missing = {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} - present
    assert not missing, f"{layer}: missing {sorted(missing)}"


@pytest.mark.parametrize("layer", LAYERS)
def test_main_tf_opens_with_what_the_layer_owns(layer):
    head = (TERRAFORM / layer / "main.tf").read_text().splitlines()[:3]
    assert head and head[0].startswith(f"# Layer: {layer}"), f"{layer}/main.tf must open with '# Layer: {layer} — …'"
    assert any("Owns" in line or "owns" in line for line in (TERRAFORM / layer / "main.tf").read_text().splitlines()[:15])


@pytest.mark.parametrize("module", MODULES)
def test_module_main_tf_opens_with_what_the_module_owns(module):
    lines = (TERRAFORM / module / "main.tf").read_text().splitlines()
    name = module.removeprefix("modules/")
    assert lines and lines[0].startswith(f"# Module: {name}"), f"{module}/main.tf must open with '# Module: {name} — …'"
    assert any("Owns" in line or "owns" in line for line in lines[:15])


def test_one_exact_terraform_version_everywhere(layers):
    pinned = (TERRAFORM / ".terraform-version").read_text().strip()
    assert EXACT_VERSION.match(pinned), f".terraform-version must be exact, got {pinned!r}"
    for layer in layers.values():
        version = layer.terraform_block()["required_version"]
        assert version == pinned, f"{layer.name}: required_version {version!r} != .terraform-version {pinned!r}"


def test_provider_pins_are_exact_and_identical_across_layers(layers):
    seen = {}
    for layer in layers.values():
        providers = layer.terraform_block()["required_providers"][0]
        for name, spec in providers.items():
            assert EXACT_VERSION.match(spec["version"]), f"{layer.name}: {name} pinned to a range: {spec['version']!r}"
            pin = (spec["source"], spec["version"])
            assert seen.setdefault(name, (layer.name, pin))[1] == pin, (
                f"provider {name}: {layer.name} pins {pin}, {seen[name][0]} pins {seen[name][1]}"
            )
    assert "aws" in seen


@pytest.mark.parametrize("layer", LAYERS)
def test_backend_is_s3_with_native_locking_and_no_hard_coded_bucket(layers, layer):
    backend = layers[layer].terraform_block()["backend"][0]["s3"]
    assert backend["key"] == f"{layer}/terraform.tfstate"
    assert backend["use_lockfile"] is True
    assert "bucket" not in backend, "the bucket is account-specific: pass it with -backend-config"
    # encrypt = true would make the backend ask for SSE-S3 and bypass the bucket's KMS key.
    assert "encrypt" not in backend
    assert "dynamodb_table" not in backend


@pytest.mark.parametrize("layer", LAYERS + MODULES)
def test_every_variable_is_typed_described_declared_and_used(layer):
    tf = Layer(layer)
    declared = tf.variables()
    for name, spec in declared.items():
        assert spec.get("type"), f"{layer}: variable {name} has no type"
        assert len(spec.get("description", "")) >= 15, f"{layer}: variable {name} needs a real description"
    used = tf.references("var")
    assert not used - declared.keys(), f"{layer}: var.{sorted(used - declared.keys())} used but not declared"
    assert not declared.keys() - used, f"{layer}: variables {sorted(declared.keys() - used)} declared but never used"


@pytest.mark.parametrize("layer", LAYERS + MODULES)
def test_every_output_is_described(layer):
    for name, spec in Layer(layer).outputs().items():
        assert spec.get("description"), f"{layer}: output {name} has no description"


@pytest.mark.parametrize("layer", LAYERS + MODULES)
def test_every_local_is_used(layer):
    tf = Layer(layer)
    declared = tf.locals().keys()
    unused = declared - tf.references("local")
    assert not unused, f"{layer}: locals {sorted(unused)} are never used"


@pytest.mark.parametrize("layer", LAYERS)
def test_region_defaults_to_eu_west_2(layers, layer):
    assert layers[layer].variables()["aws_region"]["default"] == "eu-west-2"


def test_no_account_specific_literal(layers, modules):
    account_id = re.compile(r"(?<![\d.])\d{12}(?![\d.])")
    for layer in [*layers.values(), *modules.values()]:
        for path in layer.dir.glob("*.tf"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not account_id.search(line), f"{path.name}:{number}: looks like an account id: {line.strip()}"
                assert "arn:aws:" not in line, f"{path.name}:{number}: literal ARN (build it from the partition)"


def test_helm_charts_are_pinned_to_exact_versions(layers):
    app = layers["app"]
    releases = app.resources("helm_release")
    assert set(releases) == {"aws_load_balancer_controller", "cluster_autoscaler"}
    variables = app.variables()
    for name, release in releases.items():
        ref = release["version"]
        match = re.fullmatch(r"\$\{var\.([a-z_]+)\}", ref)
        assert match, f"helm_release.{name}: version must come from one variable, got {ref!r}"
        default = variables[match.group(1)]["default"]
        assert EXACT_VERSION.match(default), f"helm_release.{name}: chart version {default!r} is not exact"


ALL_TF_FILES = sorted(p.relative_to(TERRAFORM) for p in TERRAFORM.glob("**/*.tf") if ".terraform" not in p.parts)


@pytest.mark.parametrize("path", ALL_TF_FILES, ids=str)
def test_every_tf_file_parses(path):
    import hcl2

    with (TERRAFORM / path).open() as fh:
        assert hcl2.load(fh), f"{path} parsed to nothing"


def test_every_checkov_suppression_says_why():
    skip = re.compile(r"#checkov:skip=(CKV2?_[A-Z0-9]+_\d+)(?::(.*))?$")
    count = 0
    for path in ALL_TF_FILES:
        for number, line in enumerate((TERRAFORM / path).read_text().splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            match = skip.search(line.strip())
            assert match, f"{path}:{number}: malformed suppression {line.strip()!r}"
            reason = (match.group(2) or "").strip()
            assert len(reason) >= 30, f"{path}:{number}: {match.group(1)} is suppressed without a real reason"
            count += 1
    assert count > 0
