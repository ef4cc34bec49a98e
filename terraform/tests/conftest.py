"""Parsed Terraform layers for the offline tests.

python-hcl2 (v8) keeps HCL's quoting: block labels and literal strings arrive as '"name"', and
expressions as '${...}'. `Layer` undoes the quoting once so tests can compare plain values, and
keeps expressions as text so tests can assert what an attribute is built from.
"""

import json
import pathlib
import re

import hcl2
import pytest

TERRAFORM = pathlib.Path(__file__).resolve().parent.parent
REPO = TERRAFORM.parent
LAYERS = ("bootstrap", "infra", "app")
# Local modules the layers call, as paths under terraform/ ("modules/<name>").
MODULES = tuple(sorted(f"modules/{p.name}" for p in (TERRAFORM / "modules").iterdir() if p.is_dir()))


def unquote(value):
    """Strip HCL's string quoting recursively; drop python-hcl2's bookkeeping keys."""
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def expressions(value):
    """Every string (literal or ${expression}) inside a parsed value, depth first."""
    if isinstance(value, dict):
        for v in value.values():
            yield from expressions(v)
    elif isinstance(value, list):
        for v in value:
            yield from expressions(v)
    elif isinstance(value, str):
        yield value


class Layer:
    def __init__(self, name):
        self.name = name
        self.dir = TERRAFORM / name
        self.files = {}
        for path in sorted(self.dir.glob("*.tf")):
            with path.open() as fh:
                self.files[path.name] = unquote(hcl2.load(fh))

    def blocks(self, kind):
        for doc in self.files.values():
            yield from doc.get(kind, [])

    def resources(self, rtype):
        """{name: body} of every `resource "rtype" "name"`."""
        found = {}
        for block in self.blocks("resource"):
            for t, named in block.items():
                if t == rtype:
                    found.update(named)
        return found

    def data(self, dtype):
        found = {}
        for block in self.blocks("data"):
            for t, named in block.items():
                if t == dtype:
                    found.update(named)
        return found

    def resource(self, rtype, name):
        body = self.resources(rtype).get(name)
        assert body is not None, f"{self.name}: no resource {rtype}.{name}"
        return body

    def variables(self):
        found = {}
        for block in self.blocks("variable"):
            found.update(block)
        return found

    def outputs(self):
        found = {}
        for block in self.blocks("output"):
            found.update(block)
        return found

    def locals(self):
        found = {}
        for block in self.blocks("locals"):
            found.update(block)
        return found

    def module_calls(self):
        """{name: body} of every `module "name"`."""
        found = {}
        for block in self.blocks("module"):
            found.update(block)
        return found

    def terraform_block(self):
        blocks = list(self.blocks("terraform"))
        assert len(blocks) == 1, f"{self.name}: expected one terraform block, found {len(blocks)}"
        return blocks[0]

    def references(self, prefix):
        """Names referenced as `<prefix>.<name>` anywhere in the layer's expressions."""
        pattern = re.compile(re.escape(prefix) + r"\.([A-Za-z_][A-Za-z0-9_-]*)")
        names = set()
        for doc in self.files.values():
            for text in expressions(doc):
                names.update(pattern.findall(text))
        return names


@pytest.fixture(scope="session")
def layers():
    return {name: Layer(name) for name in LAYERS}


@pytest.fixture(scope="session")
def modules():
    return {name: Layer(name) for name in MODULES}


@pytest.fixture(scope="session")
def edge():
    with (REPO / "edge" / "cloudfront.json").open() as fh:
        return json.load(fh)


def text_of(value):
    """One string holding every expression in a parsed body (for `references X` assertions)."""
    return "\n".join(expressions(value))
