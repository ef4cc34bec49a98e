"""The ALB facts the manifests depend on, read from terraform/app (which owns the ALB and its target
group, see manifests/base/origin/targetgroupbinding.yaml).

Parsed with python-hcl2 and tolerant of the file layout: every *.tf file of the layer is read and the
`aws_lb` / `aws_lb_target_group` resources are found by type, whatever their names or files. Values
given as `var.x` (its default) or `local.x` are resolved one level. Two parsers install as the module
`hcl2` (python-hcl2 8.x, and checkov's bc-python-hcl2 fork, which wraps every attribute in a list and
leaves quotes off); both shapes are normalised here.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2

TERRAFORM_APP = Path(__file__).resolve().parents[2] / "terraform" / "app"
_REFERENCE = re.compile(r"^\$\{(var|local)\.([A-Za-z0-9_-]+)\}$")


def _unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _normalise(node):
    """Both parsers' output -> plain dicts: quotes and bookkeeping keys removed, attributes unwrapped."""
    if isinstance(node, dict):
        return {_unquote(k): _normalise(v) for k, v in node.items() if not str(k).startswith("__")}
    if isinstance(node, list):
        items = [_normalise(v) for v in node]
        # bc-python-hcl2 wraps scalar attributes in one-element lists; blocks stay lists of dicts.
        if len(items) == 1 and not isinstance(items[0], dict):
            return items[0]
        return items
    return _unquote(node)


def load(directory: Path = TERRAFORM_APP) -> dict:
    """{'resource': {type: {name: attrs}}, 'data': {...}, 'variable': {name: attrs}, 'locals': {...}}"""
    files = sorted(directory.glob("*.tf")) if directory.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"{directory} has no *.tf files: the manifests' ALB contract (target group, idle timeout) "
            "is checked against terraform/app, which must define aws_lb and aws_lb_target_group"
        )
    merged: dict = {"resource": {}, "data": {}, "variable": {}, "locals": {}}
    for path in files:
        with path.open() as handle:
            parsed = _normalise(hcl2.load(handle))
        for section in ("resource", "data"):
            for block in parsed.get(section, []):
                for rtype, instances in block.items():
                    merged[section].setdefault(rtype, {}).update(instances)
        for block in parsed.get("variable", []):
            merged["variable"].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
    return merged


def resolve(tf: dict, value):
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    if not match:
        return value
    kind, name = match.groups()
    if kind == "var":
        variable = tf["variable"].get(name)
        if variable is None or "default" not in variable:
            raise KeyError(f"variable {name} has no default in terraform/app")
        return variable["default"]
    if name not in tf["locals"]:
        raise KeyError(f"local {name} is not defined in terraform/app")
    return resolve(tf, tf["locals"][name])


def single(tf: dict, rtype: str) -> dict:
    instances = tf["resource"].get(rtype, {})
    if len(instances) != 1:
        raise AssertionError(f"expected exactly one {rtype} in terraform/app, found {sorted(instances)}")
    return next(iter(instances.values()))


def alb_facts(directory: Path = TERRAFORM_APP) -> dict:
    """The numbers and names the Kubernetes side must agree with."""
    tf = load(directory)
    lb = single(tf, "aws_lb")
    tg = single(tf, "aws_lb_target_group")
    health = tg.get("health_check", [{}])
    health = health[0] if isinstance(health, list) else health
    return {
        # AWS defaults when unset: idle timeout 60 s, deregistration delay 300 s, health check "/".
        "idle_timeout": int(resolve(tf, lb.get("idle_timeout", 60))),
        "deregistration_delay": int(resolve(tf, tg.get("deregistration_delay", 300))),
        "target_type": resolve(tf, tg.get("target_type", "instance")),
        "port": int(resolve(tf, tg["port"])),
        "protocol": resolve(tf, tg.get("protocol")),
        "health_check_path": resolve(tf, health.get("path", "/")),
        "name": resolve(tf, tg.get("name")),
        "source": str(tf),
    }
