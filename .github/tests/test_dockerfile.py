"""Invariants of origin/Dockerfile and the build context (.dockerignore) that no Docker daemon is
needed to check: cross-compiled multi-stage build, pinned bases, a shell-less non-root runtime, a
cached dependency layer, and a context that carries everything the compiler reads."""

import fnmatch
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, load_workflow

DOCKERFILE = ROOT / "origin" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def instructions(text: str):
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            keyword, _, args = current.strip().partition(" ")
            logical.append((keyword.upper(), args.strip()))
        current = ""
    return logical


def stages(text: str):
    """[{'from': args, 'name': alias, 'body': [(KEYWORD, args)]}] in order."""
    result = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            match = re.search(r"\s+AS\s+(\S+)$", args, re.IGNORECASE)
            result.append({"from": args, "name": match.group(1) if match else None, "body": []})
        elif result:
            result[-1]["body"].append((keyword, args))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> str:
    assert DOCKERFILE.is_file(), "origin/Dockerfile is missing"
    return DOCKERFILE.read_text(encoding="utf-8")


def image_of(from_args: str) -> str:
    words = [w for w in from_args.split() if not w.startswith("--")]
    return words[0]


def test_multi_stage_with_a_separate_runtime_stage(dockerfile):
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 3, "expected chef/planner/builder stages plus a runtime stage"
    names = [s["name"] for s in all_stages]
    assert {"planner", "builder"} <= set(names)


def test_base_images_are_pinned_by_digest(dockerfile):
    internal = {s["name"] for s in stages(dockerfile) if s["name"]}
    for stage in stages(dockerfile):
        image = image_of(stage["from"])
        if image in internal:
            continue
        assert DIGEST.search(image), f"{image}: pin external base images by @sha256 digest"
        tag = image.split("@")[0].rpartition(":")[2]
        assert tag not in {"latest", "stable", ""}, f"{image}: a readable exact tag goes with the digest"


def test_build_stages_run_on_the_build_platform(dockerfile):
    """Cross-compilation instead of QEMU: every stage that runs commands runs natively."""
    all_stages = stages(dockerfile)
    internal = {s["name"] for s in all_stages if s["name"]}
    for stage in all_stages[:-1]:
        image = image_of(stage["from"])
        if image in internal:
            continue  # inherits the platform of the stage it builds on
        assert "--platform=$BUILDPLATFORM" in stage["from"], f"{stage['name']}: FROM --platform=$BUILDPLATFORM"


def test_runtime_stage_is_shell_less_and_non_root(dockerfile):
    runtime = stages(dockerfile)[-1]
    image = image_of(runtime["from"])
    assert image == "scratch" or image.startswith("gcr.io/distroless/"), f"runtime base {image}"
    assert ":debug" not in image, "distroless :debug images carry a shell"
    keywords = [k for k, _ in runtime["body"]]
    assert "RUN" not in keywords, "the runtime stage must not RUN anything (no shell, nothing emulated)"
    users = [a for k, a in runtime["body"] if k == "USER"]
    assert users, "runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be numeric and non-root (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    entrypoint = [a for k, a in runtime["body"] if k == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1].startswith("["), "exec-form ENTRYPOINT (there is no shell)"
    assert "counter-origin" in entrypoint[-1]
    exposed = " ".join(a for k, a in runtime["body"] if k == "EXPOSE").split()
    assert {"8080", "9090"} <= set(exposed), "the http and metrics ports"


def test_builder_glibc_matches_the_runtime(dockerfile):
    """A binary linked against a newer glibc than the runtime's does not start."""
    all_stages = stages(dockerfile)
    builder_base = next(image_of(s["from"]) for s in all_stages if "--platform=$BUILDPLATFORM" in s["from"])
    runtime = image_of(all_stages[-1]["from"])
    debian = {"bookworm": "debian12", "trixie": "debian13", "bullseye": "debian11"}
    release = next((name for name in debian if name in builder_base), None)
    assert release, f"builder {builder_base}: name its Debian release in the tag"
    if runtime != "scratch":
        assert debian[release] in runtime, f"builder is {release} but runtime is {runtime}"


def test_dependency_layer_is_cooked_before_the_sources_are_copied(dockerfile):
    builder = next(s for s in stages(dockerfile) if s["name"] == "builder")
    body = [f"{k} {a}" for k, a in builder["body"]]
    cook = next(i for i, line in enumerate(body) if "cargo chef cook" in line)
    copy_all = next(i for i, line in enumerate(body) if re.match(r"COPY \. ", line))
    build = next(i for i, line in enumerate(body) if "cargo build" in line)
    assert cook < copy_all < build, "cook (dependencies) → COPY sources → build"
    assert "recipe.json" in body[0], "the builder starts from the planner's recipe only"
    planner = next(s for s in stages(dockerfile) if s["name"] == "planner")
    assert any("cargo chef prepare" in a for _, a in planner["body"])
    for line in (body[cook], body[build]):
        assert "--locked" in line and "--release" in line and '--target "$TRIPLE"' in line


def test_same_rust_toolchain_as_ci(dockerfile):
    """The image is built by the compiler CI tested with."""
    version = re.search(r"rust:(\d+\.\d+\.\d+)-", dockerfile)
    assert version, "pin the builder to an exact Rust release (rust:X.Y.Z-…)"
    ci = load_workflow("ci.yml")
    images = [job["container"]["image"] for job in ci["jobs"].values() if "container" in job]
    assert images, "ci.yml runs its Rust jobs in a pinned rust container"
    for image in images:
        assert image.startswith(f"rust:{version.group(1)}-"), f"ci.yml uses {image}, the Dockerfile rust:{version.group(1)}"


def cross_setup_script(dockerfile: str) -> str:
    chef = next(s for s in stages(dockerfile) if s["name"] == "chef")
    script = next(a for k, a in chef["body"] if k == "RUN" and "TARGETARCH" in a)
    return script.replace(">/cross-env", '>"$CROSS_ENV"')


@pytest.mark.parametrize(
    "build_arch,target_arch,packages,triple",
    [
        ("amd64", "arm64", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross", "aarch64-unknown-linux-gnu"),
        ("amd64", "amd64", "", "x86_64-unknown-linux-gnu"),
        ("arm64", "amd64", "gcc-x86-64-linux-gnu libc6-dev-amd64-cross", "x86_64-unknown-linux-gnu"),
        ("arm64", "arm64", "", "aarch64-unknown-linux-gnu"),
    ],
)
def test_cross_toolchain_setup(dockerfile, tmp_path, build_arch, target_arch, packages, triple):
    """Runs the chef stage's toolchain script with apt-get/rustup/dpkg stubbed: the cross compiler
    is installed only for the other architecture, and cargo and the cc crate get its linker."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls"
    for name in ("apt-get", "rustup"):
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >>"{log}"\n')
    (stubs / "dpkg").write_text(f"#!/bin/sh\necho {build_arch}\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", TARGETARCH=target_arch,
               CROSS_ENV=str(tmp_path / "cross-env"))
    subprocess.run(["bash", "-euo", "pipefail", "-c", cross_setup_script(dockerfile)], env=env, check=True)
    calls = log.read_text().splitlines()
    install = next(c for c in calls if c.startswith("apt-get install"))
    assert install.split("--no-install-recommends")[1].strip() == packages
    assert f"rustup target add {triple}" in calls
    gnu = triple.replace("-unknown", "")
    exported = (tmp_path / "cross-env").read_text()
    upper = triple.upper().replace("-", "_")
    lower = triple.replace("-", "_")
    assert f"export TRIPLE={triple}" in exported
    assert f"CARGO_TARGET_{upper}_LINKER={gnu}-gcc" in exported
    assert f"CC_{lower}={gnu}-gcc" in exported


def test_cross_toolchain_setup_refuses_other_architectures(dockerfile, tmp_path):
    env = dict(os.environ, TARGETARCH="s390x", CROSS_ENV=str(tmp_path / "cross-env"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", cross_setup_script(dockerfile)],
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "unsupported TARGETARCH" in result.stderr


# --- build context --------------------------------------------------------------------------------


def context_includes(path: str) -> bool:
    """Docker's .dockerignore semantics (last matching pattern wins; `!` re-includes)."""
    included = True
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        # A pattern matching a directory also matches everything under it.
        if re.fullmatch(regex + "(/.*)?", path):
            included = negate
    return included


def test_context_carries_the_workspace_and_the_embedded_page():
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    needed = ["Cargo.toml", "Cargo.lock", "static/index.html"]
    for member in members:
        needed += [f"{member}/Cargo.toml"] + [
            str(p.relative_to(ROOT)) for p in (ROOT / member).rglob("*.rs") if "target" not in p.parts
        ]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "static").rglob("*") if p.is_file()]
    missing = [path for path in needed if not context_includes(path)]
    assert not missing, f".dockerignore leaves out what the build reads: {missing[:10]}"


def test_context_leaves_out_what_must_not_reach_the_builder():
    for path in ("target/release/counter-origin", "origin/target/x", ".git/config", ".tools/venv/bin/python",
                 "manifests/overlays/prod/kustomization.yaml", "terraform/app/main.tf", ".env",
                 "page/node_modules/x/index.js", "README.md"):
        assert not context_includes(path), f"{path} would be sent to the builder"


def test_build_script_reads_only_what_the_context_carries():
    """build.rs embeds `static/` and skips it silently when absent: the context must carry every
    directory that origin's build script or sources reach outside the crate."""
    sources = [ROOT / "origin" / "build.rs", *(ROOT / "origin" / "src").rglob("*.rs")]
    reached = set()
    crate = (ROOT / "origin").resolve()
    for source in (s for s in sources if s.is_file()):
        # build.rs joins onto CARGO_MANIFEST_DIR (origin/); include_str! is relative to the file.
        base = crate if source.name == "build.rs" else source.parent
        for match in re.finditer(r'"(\.\./[A-Za-z0-9_./-]+)', source.read_text(encoding="utf-8")):
            target = (base / match.group(1)).resolve()
            if not target.is_relative_to(crate):
                reached.add(target.relative_to(ROOT.resolve()).parts[0])
    assert "static" in reached, "origin/build.rs no longer embeds ../static? update this test"
    for top in reached:
        probe = next((str(p.relative_to(ROOT)) for p in (ROOT / top).rglob("*") if p.is_file()), f"{top}/x")
        assert context_includes(probe), f"origin reads ../{top} but .dockerignore excludes it"


def test_image_inputs_trigger_a_release():
    """Every path the image is built from starts release.yml; manifest commits never do."""
    paths = load_workflow("release.yml")["on"]["push"]["paths"]

    # The build context is .dockerignore's allowlist: each `!dir/` or `!file` is an input, so the
    # trigger paths are derived from it and cannot drift (testkit/ was once missing).
    inputs = set()
    for line in DOCKERIGNORE.read_text().splitlines():
        if line.startswith("!") and "*" not in line:
            entry = line[1:]
            inputs.add(entry + "**" if entry.endswith("/") else entry)
    assert inputs, ".dockerignore has no allowlist"
    build_definition = {".dockerignore", ".github/workflows/release.yml"}
    assert set(paths) == inputs | build_definition, (
        f"release.yml on.push.paths must be .dockerignore's allowlist plus {sorted(build_definition)}: "
        f"missing {sorted((inputs | build_definition) - set(paths))}, extra {sorted(set(paths) - inputs - build_definition)}"
    )

    def triggers(path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern.replace("**", "*")) for pattern in paths)

    for path in ("Cargo.toml", "Cargo.lock", "origin/src/main.rs", "origin/build.rs", "origin/Dockerfile",
                 "static/index.html", "static/assets/app.js", ".dockerignore"):
        assert triggers(path), f"{path} changes the image but no release runs"
    for path in ("manifests/overlays/prod/kustomization.yaml", "manifests/argocd/application.yaml",
                 "terraform/app/main.tf", "README.md"):
        assert not triggers(path), f"{path} would start a release (tag commits would loop)"
