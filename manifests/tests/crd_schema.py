"""CustomResourceDefinition OpenAPI v3 schemas as JSON Schema validators.

The API server validates a custom resource against its CRD's structural schema and, with strict field
validation, rejects fields the schema does not declare. JSON Schema validators know neither rule nor the
Kubernetes extensions, so the schema is translated: unknown fields become errors
(`additionalProperties: false`) wherever the schema does not say `x-kubernetes-preserve-unknown-fields`,
`nullable` becomes a null type, and `x-kubernetes-int-or-string` keeps its `anyOf`. CEL rules
(`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

CRD_DIR = Path(__file__).parent / "crds"


def _strict(schema: dict) -> dict:
    schema = copy.deepcopy(schema)

    def walk(node: dict) -> None:
        if not isinstance(node, dict):
            return
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        # `metadata` is validated by the API server itself, never by the CRD schema.
        if "properties" in node:
            for key, child in node["properties"].items():
                walk(child)
            if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
                node["additionalProperties"] = False
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("anyOf", "allOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    return schema


def load_validators(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, for every served version of every CRD in crd_dir."""
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
                # Structural check only: upstream patterns are Go RE2 (e.g. `(?i)`), which the metaschema's
                # ECMA-262 `regex` format rejects although Python's re, used for matching, accepts them.
                meta_errors = list(validator_cls(validator_cls.META_SCHEMA).iter_errors(schema))
                if meta_errors:
                    raise ValueError(f"{path.name}: invalid schema for {kind}: {meta_errors[0].message}")
                validators[(f"{group}/{version['name']}", kind)] = validator_cls(schema)
    return validators


def errors(validator: jsonschema.protocols.Validator, obj: dict) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
