"""Shared fixtures: the project's rules and dashboard, and promtool (Debian's `prometheus` package)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import queries  # noqa: E402


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install the Debian package 'prometheus' (scripts/test-observability.sh does)")
    return path


@pytest.fixture(scope="session")
def rule_groups() -> list[dict]:
    return queries.load_rule_groups()


@pytest.fixture(scope="session")
def dashboard() -> dict:
    return queries.load_dashboard()


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory, rule_groups) -> Path:
    """The PrometheusRule's groups as a plain rule file, as Prometheus receives them from the operator."""
    directory = tmp_path_factory.mktemp("rules")
    queries.write_rules_file(directory / "rules.yaml", rule_groups)
    return directory
