"""The release's tag bump, run for real (kustomize edit set image) on a copy of manifests/: it
changes exactly the image lines of overlays/prod, a second run changes nothing, and the rendered
prod manifests then carry the new image."""

import difflib
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "pin-image-tag.sh"
OVERLAY = "manifests/overlays/prod"
IMAGE = "210987654321.dkr.ecr.eu-west-2.amazonaws.com/counter-origin"
TAG = "sha-" + "0123456789abcdef" * 2 + "01234567"


@pytest.fixture
def repo(tmp_path):
    """A copy of manifests/ (the kustomize build reaches nothing outside it)."""
    prod = ROOT / OVERLAY / "kustomization.yaml"
    assert prod.is_file(), f"{OVERLAY}/kustomization.yaml is missing: the release has nothing to pin"
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    return tmp_path


def pin(repo, *args):
    return subprocess.run([str(SCRIPT), *args], cwd=repo, capture_output=True, text=True)


def render(repo):
    out = subprocess.run(["kubectl", "kustomize", OVERLAY], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def origin_images(objects):
    return [
        container["image"]
        for obj in objects
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
        if "counter-origin" in container["image"]
    ]


def test_pin_changes_exactly_the_image_lines(repo):
    path = repo / OVERLAY / "kustomization.yaml"
    before = path.read_text()
    result = pin(repo, IMAGE, TAG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pinned"
    after = path.read_text()
    changed = [
        line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    unexpected = [line for line in changed if not re.match(r"^[+-]\s*(- )?new(Name|Tag): ", line)]
    assert not unexpected, (
        f"{OVERLAY}/kustomization.yaml is not in the form `kustomize edit` writes, so a release would "
        "rewrite more than the image: write it as kustomize emits it (sequences not indented under their "
        "key, nested keys sorted, no default-valued fields, comments at the top). Unexpected diff:\n"
        + "\n".join(unexpected[:20])
    )
    assert any(line.startswith("+") and line.endswith(f"newName: {IMAGE}") for line in changed)
    assert any(line.startswith("+") and line.endswith(f"newTag: {TAG}") for line in changed)


def test_pin_twice_is_a_no_op(repo):
    path = repo / OVERLAY / "kustomization.yaml"
    assert pin(repo, IMAGE, TAG).returncode == 0
    first = path.read_bytes()
    second = pin(repo, IMAGE, TAG)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "unchanged"
    assert path.read_bytes() == first


def test_the_committed_pin_is_already_in_kustomize_form(repo):
    """Pinning what is already pinned is a no-op: the release's first run changes only the tag."""
    path = repo / OVERLAY / "kustomization.yaml"
    current = yaml.safe_load(path.read_text())
    entry = next(i for i in current.get("images", []) if i["name"] == "counter-origin")
    before = path.read_bytes()
    result = pin(repo, entry["newName"], entry["newTag"])
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == before, "kustomize edit would reformat overlays/prod/kustomization.yaml"


def test_rendered_prod_manifests_carry_the_new_image(repo):
    assert f"{IMAGE}:{TAG}" not in origin_images(render(repo))
    assert pin(repo, IMAGE, TAG).returncode == 0
    images = origin_images(render(repo))
    assert images and set(images) == {f"{IMAGE}:{TAG}"}, images


@pytest.mark.parametrize(
    "image,tag",
    [
        (IMAGE, "latest"),
        (IMAGE, "sha-0123abc"),
        (IMAGE, "sha-" + "A" * 40),
        (f"{IMAGE}:v1", TAG),
        (f"{IMAGE}@sha256:" + "0" * 64, TAG),
        ("", TAG),
    ],
)
def test_pin_refuses_mutable_or_malformed_references(repo, image, tag):
    path = repo / OVERLAY / "kustomization.yaml"
    before = path.read_bytes()
    result = pin(repo, image, tag)
    assert result.returncode != 0
    assert "pin-image-tag:" in result.stderr
    assert path.read_bytes() == before


def test_pin_never_edits_text_directly():
    """Structured edits only: the script changes the file through kustomize, never sed/awk/perl."""
    body = "\n".join(line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "kustomize edit set image" in body
    assert not re.search(r"\b(sed|awk|perl|yq)\b", body)
