"""Every resource and data block uses only arguments and blocks its provider knows, and sets every
required one (issue 12, "Provider schemas offline"). `terraform init/validate` cannot reach the
registry here; the npm packages @cdktf/provider-{aws,helm,random} carry each resource's schema in
`lib/<resource>/index.d.ts`: the `…Config` interface lists every argument (optional ones with `?`),
names the HCL argument in its docs link (`#snake_name`) and types nested blocks by interface.
scripts/test-terraform.sh fetches them (`npm pack`) into PROVIDER_SCHEMA_DIR. The versions they
describe must be the versions the layers pin."""

import os
import re
from functools import lru_cache
from pathlib import Path

import hcl2
import pytest

from conftest import LAYERS, MODULES, TERRAFORM

SCHEMA_DIR = os.environ.get("PROVIDER_SCHEMA_DIR")
PACKAGES = {"aws": "provider-aws", "helm": "provider-helm", "random": "provider-random"}
META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection", "dynamic"}
# Terraform's built-in data source.
BUILTIN = {"terraform_remote_state": {"backend", "config", "defaults", "workspace"}}

PROPERTY = re.compile(
    r"/\*\*(?P<doc>(?:(?!\*/).)*?)\*/\s*readonly (?P<name>\w+)(?P<optional>\?)?: (?P<type>[^;]+);", re.S)
LINK = re.compile(r"#(?P<snake>[a-z0-9_]+) \w+#")


def package_root(provider):
    assert SCHEMA_DIR, "PROVIDER_SCHEMA_DIR is not set: run this through scripts/test-terraform.sh (npm pack)"
    root = Path(SCHEMA_DIR) / PACKAGES[provider] / "package"
    assert root.is_dir(), f"{root} missing: scripts/test-terraform.sh fetches @cdktf/{PACKAGES[provider]}"
    return root


def interfaces(text):
    found = {}
    for match in re.finditer(r"export interface (\w+)(?: extends [\w.]+)? \{\n(.*?)\n\}", text, re.S):
        found[match.group(1)] = match.group(2)
    return found


def parse_interface(name, table):
    """{hcl_name: (required, nested_schema_or_None)} for one Config interface."""
    schema = {}
    for prop in PROPERTY.finditer(table[name]):
        link = LINK.search(prop.group("doc"))
        if not link:
            continue
        nested = None
        first = re.match(r"(\w+)", prop.group("type").strip())
        first = first.group(1) if first else None
        if first in table and first != name:
            nested = parse_interface(first, table)
        schema[link.group("snake")] = (prop.group("optional") is None, nested)
    return schema


@lru_cache(maxsize=None)
def schema_for(kind, type_name):
    provider = type_name.split("_", 1)[0]
    rest = type_name.split("_", 1)[1]
    lib = package_root(provider) / "lib"
    directory = (f"data-{provider}-" if kind == "data" else "") + rest.replace("_", "-")
    candidates = [lib / directory / "index.d.ts"]
    if kind == "resource":
        candidates.append(lib / f"{directory}-resource" / "index.d.ts")  # cdktf renames clashes
    docs_kind = "data-sources" if kind == "data" else "resources"
    for path in candidates:
        if path.is_file():
            text = path.read_text()
            if f"/docs/{docs_kind}/{rest}#" not in text:
                continue
            table = interfaces(text)
            config = next(n for n, body in table.items() if n.endswith("Config") and "TerraformMetaArguments" in
                          re.search(rf"export interface {n}( extends [\w.]+)?", text).group(0))
            return parse_interface(config, table)
    raise AssertionError(f"{kind} {type_name}: not in @cdktf/{PACKAGES[provider]} (unknown to the pinned provider)")


def check_body(where, body, schema, problems):
    present = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if key == "dynamic":
            for dynamic in value:
                for label, content in dynamic.items():
                    if label.startswith("__"):
                        continue
                    label = label.strip('"')
                    present.add(label)
                    if label not in schema:
                        problems.append(f"{where}: unknown dynamic block {label!r}")
                        continue
                    nested = schema[label][1]
                    inner = content.get("content", [{}])
                    for item in inner if isinstance(inner, list) else [inner]:
                        if nested is not None:
                            check_body(f"{where}.{label}", item, nested, problems)
            continue
        if key in META:
            continue
        present.add(key)
        if key not in schema:
            problems.append(f"{where}: unknown argument or block {key!r}")
            continue
        nested = schema[key][1]
        if nested is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and item.get("__is_block__"):
                check_body(f"{where}.{key}", item, nested, problems)
    for name, (required, _) in schema.items():
        if required and name not in present and name != "id":
            problems.append(f"{where}: required {name!r} is not set")


def blocks(layer, kind):
    for path in sorted((TERRAFORM / layer).glob("*.tf")):
        with path.open() as fh:
            doc = hcl2.load(fh)
        for block in doc.get(kind, []):
            for type_name, named in block.items():
                if type_name.startswith("__"):
                    continue
                type_name = type_name.strip('"')
                for name, body in named.items():
                    if name.startswith("__"):
                        continue
                    yield path.name, type_name, name.strip('"'), body


@pytest.mark.parametrize("layer", LAYERS + MODULES)
@pytest.mark.parametrize("kind", ["resource", "data"])
def test_blocks_use_only_known_arguments_and_set_required_ones(layer, kind):
    problems = []
    checked = 0
    for filename, type_name, name, body in blocks(layer, kind):
        where = f"{layer}/{filename}: {kind} {type_name}.{name}"
        if type_name in BUILTIN:
            unknown = {k for k in body if not k.startswith("__")} - BUILTIN[type_name] - META
            problems += [f"{where}: unknown argument {k!r}" for k in sorted(unknown)]
            continue
        check_body(where, body, schema_for(kind, type_name), problems)
        checked += 1
    assert checked, f"{layer}: no {kind} blocks checked"
    assert not problems, "\n".join(problems)


def test_the_schema_check_catches_an_unknown_and_a_missing_argument():
    """The check can fail: a typo and a missing required argument are both reported."""
    schema = schema_for("resource", "aws_eks_addon")
    problems = []
    check_body("probe", {"addon_name": '"x"', "configuration_value": '"{}"'}, schema, problems)
    assert any("unknown argument or block 'configuration_value'" in p for p in problems), problems
    assert any("required 'cluster_name'" in p for p in problems), problems


def test_pinned_provider_versions_are_the_ones_the_schemas_describe(layers):
    versions = {}
    for provider in PACKAGES:
        text = next((package_root(provider) / "lib").glob("*/index.d.ts")).read_text()
        versions[provider] = re.search(rf"registry\.terraform\.io/providers/hashicorp/{provider}/([\d.]+)/", text).group(1)
    for layer in layers.values():
        for name, spec in layer.terraform_block()["required_providers"][0].items():
            assert spec["version"] == versions[name], (
                f"{layer.name}: {name} pinned to {spec['version']}, the offline schema describes {versions[name]}")


@lru_cache(maxsize=None)
def provider_schema(provider):
    text = (package_root(provider) / "lib" / "provider" / "index.d.ts").read_text()
    table = interfaces(text)
    name = next(n for n in table if n.endswith("ProviderConfig"))
    return parse_interface(name, table)


@pytest.mark.parametrize("layer", LAYERS)
def test_provider_blocks_use_only_known_arguments(layer):
    problems = []
    for path in sorted((TERRAFORM / layer).glob("*.tf")):
        with path.open() as fh:
            doc = hcl2.load(fh)
        for block in doc.get("provider", []):
            for provider, body in block.items():
                if provider.startswith("__"):
                    continue
                provider = provider.strip('"')
                schema = provider_schema(provider)
                # Object-typed arguments (helm's `kubernetes = {…}`) are checked like nested blocks.
                check_body(f"{layer}/{path.name}: provider {provider}", body, schema, problems)
                for key, value in body.items():
                    nested = schema.get(key, (False, None))[1]
                    if nested and isinstance(value, dict) and not value.get("__is_block__"):
                        check_body(f"{layer}/{path.name}: provider {provider}.{key}", value, nested, problems)
    assert not problems, "\n".join(problems)
