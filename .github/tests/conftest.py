"""Shared fixtures for the delivery tests: the repository root and the workflows, parsed."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (what GitHub reads): `on:` stays the string "on", true/false stay booleans."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def load_workflow(name: str) -> dict:
    path = WORKFLOWS / name
    assert path.is_file(), f"missing workflow {path.relative_to(ROOT)}"
    return load_yaml(path)


def run_blocks(workflow: dict):
    """(job id, step name, script) of every `run:` step, backslash continuations joined."""
    for job_id, job in workflow.get("jobs", {}).items():
        for index, step in enumerate(job.get("steps", []) or []):
            if "run" in step:
                yield job_id, step.get("name", f"step {index}"), re.sub(r"\\\n\s*", " ", step["run"])


@pytest.fixture(scope="session")
def workflows() -> dict:
    found = {path.name: load_yaml(path) for path in sorted(WORKFLOWS.glob("*.yml"))}
    assert found, "no workflows under .github/workflows"
    return found
