"""Invariants of the GitHub Actions workflows that actionlint does not check: supply chain (actions
pinned to commits), least privilege, no static cloud keys, no hidden failures, and the wiring
between the workflows and the parts they deploy (Terraform outputs, manifests, README)."""

import re

import pytest

from conftest import ROOT, load_workflow, load_yaml, run_blocks

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Jobs that may write to the repository, and why: the release tag commit and the bootstrap's
# environment bindings. Anything else asking for contents: write is a finding.
CONTENTS_WRITERS = {("release.yml", "pin"), ("bootstrap.yml", "deploy")}


def steps_with_uses(workflows):
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            for step in job.get("steps", []) or []:
                if "uses" in step:
                    yield name, job_id, step["uses"]


def raw_lines(name):
    return (ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8").splitlines()


def test_expected_workflows_exist(workflows):
    for name in ("ci.yml", "release.yml", "terraform.yml", "terraform-plan.yml", "terraform-apply.yml",
                 "bootstrap.yml"):
        assert name in workflows


def test_actions_are_pinned_to_full_commit_shas_with_their_version(workflows):
    for name, job_id, uses in steps_with_uses(workflows):
        if uses.startswith("./"):
            continue
        assert SHA_PIN.match(uses), f"{name}:{job_id}: {uses} is not pinned to a 40-hex commit"
    for name in workflows:
        for line in raw_lines(name):
            if re.search(r"uses:\s+[\w.-]+/[\w.-]+.*@[0-9a-f]{40}", line):
                assert re.search(r"@[0-9a-f]{40}\s+#\s+v\d+(\.\d+)*\s*$", line), f"{name}: version comment: {line.strip()}"


def test_one_commit_per_action_everywhere(workflows):
    """Two commits of one action mean one of them missed an update."""
    seen = {}
    for name, _, uses in steps_with_uses(workflows):
        if uses.startswith("./"):
            continue
        action, _, sha = uses.partition("@")
        assert seen.setdefault(action, sha) == sha, f"{action} pinned to two commits"


def test_least_privilege_permissions(workflows):
    for name, workflow in workflows.items():
        assert workflow.get("permissions") == {}, f"{name}: top-level `permissions: {{}}`; each job asks for its own"
        for job_id, job in workflow["jobs"].items():
            assert "permissions" in job, f"{name}:{job_id} declares no permissions"
            permissions = job["permissions"]
            assert isinstance(permissions, dict), f"{name}:{job_id}: no read-all/write-all"
            if permissions.get("contents") == "write":
                assert (name, job_id) in CONTENTS_WRITERS, f"{name}:{job_id} must not write to the repository"
            uses_aws = any("configure-aws-credentials" in s.get("uses", "") for s in job.get("steps", []) or [])
            if permissions.get("id-token") == "write" and "uses" not in job:
                assert uses_aws, f"{name}:{job_id} asks for an OIDC token it never uses"
            if uses_aws:
                assert permissions.get("id-token") == "write", f"{name}:{job_id}: OIDC needs id-token: write"


def test_every_workflow_has_a_concurrency_group(workflows):
    for name, workflow in workflows.items():
        if "workflow_call" in workflow["on"]:
            jobs = workflow["jobs"].values()
            assert all("concurrency" in job for job in jobs), f"{name}: reusable jobs need their own group"
        else:
            assert "group" in workflow.get("concurrency", {}), f"{name} has no concurrency group"


def test_applies_and_releases_are_never_cancelled_half_way(workflows):
    assert workflows["release.yml"]["concurrency"]["cancel-in-progress"] is False
    assert workflows["bootstrap.yml"]["concurrency"]["cancel-in-progress"] is False
    assert workflows["terraform-apply.yml"]["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False


def test_every_job_is_time_bounded(workflows):
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            if "uses" not in job:
                assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_id} has no timeout-minutes"


def test_no_static_cloud_keys_and_no_hard_coded_accounts(workflows):
    for name in workflows:
        text = "\n".join(raw_lines(name))
        for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert forbidden not in text, f"{name} uses static AWS keys ({forbidden})"
        assert not re.search(r"\b\d{12}\b", text), f"{name} hard-codes an AWS account id"
        assert "arn:aws:" not in text, f"{name} hard-codes an ARN"
    for name, job_id, uses in steps_with_uses(workflows):
        if "configure-aws-credentials" in uses:
            step = next(s for s in workflows[name]["jobs"][job_id]["steps"] if s.get("uses") == uses)
            assert re.fullmatch(r"\$\{\{ vars\.AWS_ROLE_\w+ \}\}", step["with"]["role-to-assume"])


def test_run_blocks_use_strict_bash(workflows):
    """The default shell has no pipefail: `aws … | jq | kubectl apply` would hide the aws failure."""
    for name, workflow in workflows.items():
        assert workflow.get("defaults", {}).get("run", {}).get("shell") == "bash", f"{name}: defaults.run.shell: bash"
        for job_id, job in workflow["jobs"].items():
            assert job.get("defaults", {}).get("run", {}).get("shell", "bash") == "bash", f"{name}:{job_id}"


def test_no_hidden_failures_and_no_injection(workflows):
    for name, workflow in workflows.items():
        for job_id, step, script in run_blocks(workflow):
            where = f"{name}:{job_id}:{step}"
            for line in script.splitlines():
                if re.search(r"\|\|\s*(true|:)\s*(#.*)?$", line):
                    assert not re.search(r"\b(kubectl|helm|terraform|aws|argocd|docker|cargo|make)\b", line), \
                        f"{where}: `|| true` hides a failure: {line.strip()}"
            # Secrets and attacker-controlled event fields reach scripts through env:, never inlined.
            assert "${{ secrets." not in script, f"{where}: secret interpolated into a script"
            assert "${{ github.event." not in script, f"{where}: event field interpolated into a script"
            assert not re.search(r"\b(latest|stable)\b", script) or name != "bootstrap.yml", f"{where}: unpinned"


def test_ci_runs_the_test_command_lints_and_builds_both_architectures():
    ci = load_workflow("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    scripts = {job_id: "\n".join(s for _, _, s in run_blocks({"jobs": {job_id: job}})) for job_id, job in ci["jobs"].items()}
    everything = "\n".join(scripts.values())
    assert re.search(r"^make test$", everything, re.M), "ci.yml runs the README's test command"
    assert "cargo fmt --all --check" in everything
    clippy = re.search(r"cargo clippy .*", everything).group(0)
    assert "--all-targets" in clippy and clippy.endswith("-- -D warnings")
    builds = [s for job in ci["jobs"].values() for s in job.get("steps", []) if "build-push-action" in s.get("uses", "")]
    assert len(builds) == 1
    build = builds[0]["with"]
    assert build["push"] is False
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["file"] == "origin/Dockerfile" and build["context"] == "."


def test_nothing_is_ever_built_under_emulation(workflows):
    for name, _, uses in steps_with_uses(workflows):
        assert "setup-qemu-action" not in uses, f"{name}: QEMU is not needed (the Dockerfile cross-compiles)"


def test_release_builds_pushes_and_pins_with_kustomize():
    release = load_workflow("release.yml")
    assert release["on"]["push"]["branches"] == ["main"]
    image, pin = release["jobs"]["image"], release["jobs"]["pin"]
    build = next(s for s in image["steps"] if "build-push-action" in s.get("uses", ""))["with"]
    assert build["push"] is True
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["tags"].endswith(":${{ env.IMAGE_TAG }}") and release["env"]["IMAGE_TAG"] == "sha-${{ github.sha }}"
    assert any("amazon-ecr-login" in s.get("uses", "") for s in image["steps"])
    assert image["permissions"] == {"contents": "read", "id-token": "write"}
    assert pin["needs"] == "image" and pin["permissions"] == {"contents": "write"}
    script = "\n".join(s for _, _, s in run_blocks({"jobs": {"pin": pin}}))
    assert 'scripts/pin-image-tag.sh "$IMAGE" "$IMAGE_TAG"' in script
    assert not re.search(r"\b(sed|perl|yq)\b", script), "the tag is pinned by kustomize edit, not a text edit"
    assert "git merge-base --is-ancestor" in script, "an older release never replaces a newer pin"
    # Rerunnable: an existing tag in the (immutable) ECR repository is not pushed again.
    guarded = [s for s in image["steps"] if "build-push-action" in s.get("uses", "") or "setup-buildx" in s.get("uses", "")]
    assert all(s.get("if") == "steps.ref.outputs.exists == 'false'" for s in guarded)


def test_terraform_plans_on_pull_requests_and_applies_main_behind_the_environment():
    terraform = load_workflow("terraform.yml")
    plan = terraform["jobs"]["plan"]
    assert plan["uses"] == "./.github/workflows/terraform-plan.yml"
    assert plan["strategy"]["matrix"]["layer"] == ["bootstrap", "infra", "app"]
    assert "pull_request" in plan["if"]
    assert terraform["jobs"]["apply-infra"]["uses"] == "./.github/workflows/terraform-apply.yml"
    assert "refs/heads/main" in terraform["jobs"]["apply-infra"]["if"]
    assert terraform["jobs"]["apply-app"]["needs"] == "apply-infra"
    applied = [job["with"]["layer"] for job in terraform["jobs"].values() if job["uses"].endswith("terraform-apply.yml")]
    assert "bootstrap" not in applied, "CI never applies the layer that defines its own roles"
    for path in ("terraform/**", "edge/**"):
        assert path in terraform["on"]["pull_request"]["paths"] and path in terraform["on"]["push"]["paths"]

    plan_job = load_workflow("terraform-plan.yml")["jobs"]["plan"]
    plan_script = "\n".join(s for _, _, s in run_blocks({"jobs": {"plan": plan_job}}))
    for command in ("terraform fmt -check", "terraform init", "terraform validate", "terraform plan", "GITHUB_STEP_SUMMARY"):
        assert command in plan_script
    assert "environment" not in plan_job
    apply_job = load_workflow("terraform-apply.yml")["jobs"]["apply"]
    assert apply_job["environment"] == "production"
    apply_script = "\n".join(s for _, _, s in run_blocks({"jobs": {"apply": apply_job}}))
    assert "terraform apply -lock-timeout=10m tfplan" in apply_script, "apply exactly the plan it showed"
    assert "-auto-approve" not in apply_script
    # Layer directories and the Terraform version file the workflows read.
    assert (ROOT / "terraform" / ".terraform-version").is_file()


def test_bootstrap_runs_the_five_stages_in_order():
    bootstrap = load_workflow("bootstrap.yml")
    assert set(bootstrap["on"]) == {"workflow_dispatch"}
    order = ["infra", "app", "argocd", "observability", "deploy"]
    assert list(bootstrap["jobs"]) == order
    for before, after in zip(order, order[1:]):
        assert bootstrap["jobs"][after]["needs"] == before
    for job_id in order[2:]:
        assert bootstrap["jobs"][job_id]["environment"] == "production"
    for key in ("ARGOCD_CHART_VERSION", "KUBE_PROMETHEUS_STACK_CHART_VERSION", "HELM_VERSION"):
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", str(bootstrap["env"][key])), f"{key} must be an exact version"
    scripts = "\n".join(s for _, _, s in run_blocks(bootstrap))
    installs = re.findall(r"helm upgrade --install[^\n]*", scripts)
    assert len(installs) == 2 and all("--version" in i and "--wait" in i for i in installs)


def test_bootstrap_keeps_credentials_off_command_lines():
    blocks = [s for _, _, s in run_blocks(load_workflow("bootstrap.yml"))]
    scripts = "\n".join(blocks)
    assert not re.search(r"--from-literal=\S*(password|DATABASE_URL)", scripts, re.I)
    assert not re.search(r"--(arg|argjson)\s+\w*pass", scripts, re.I)
    assert "aws secretsmanager get-secret-value" in scripts
    assert any(re.search(r"get-secret-value [^\n]*\| jq .*?\| kubectl apply -f -", block, re.S) for block in blocks), \
        "the database credentials flow through pipes into kubectl apply"


# --- wiring to the other parts --------------------------------------------------------------------


def rendered_names():
    deployment = load_yaml(ROOT / "manifests" / "base" / "deployment.yaml")
    application = load_yaml(ROOT / "manifests" / "argocd" / "application.yaml")
    return deployment, application


def test_bootstrap_names_match_the_manifests():
    bootstrap = load_workflow("bootstrap.yml")
    deploy_env = bootstrap["jobs"]["deploy"]["env"]
    scripts = "\n".join(s for _, _, s in run_blocks(bootstrap))
    deployment, application = rendered_names()
    assert deploy_env["APPLICATION"] == application["metadata"]["name"]
    assert deploy_env["NAMESPACE"] == application["spec"]["destination"]["namespace"]
    refs = [
        env["valueFrom"]["secretKeyRef"]
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    assert refs, "the origin Deployment reads no Secret?"
    for ref in refs:
        assert f'name: "{ref["name"]}"' in scripts, f"bootstrap does not create Secret {ref['name']}"
        assert f"{ref['key']}:" in scripts, f"bootstrap does not set key {ref['key']}"
    assert "kubectl apply -k manifests/argocd" in scripts
    assert (ROOT / "manifests" / "overlays" / "prod" / "namespace.yaml").is_file()
    prod_patch = (ROOT / "manifests" / "overlays" / "prod" / "deployment-origin.yaml").read_text()
    assert "rds-ca-bundle" in prod_patch and "create configmap rds-ca-bundle" in scripts
    values = load_yaml(ROOT / "manifests" / "observability" / "kube-prometheus-stack-values.yaml")
    assert "secret generic grafana-admin" in scripts and values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    for key in (values["grafana"]["admin"]["userKey"], values["grafana"]["admin"]["passwordKey"]):
        assert f"--from-literal={key}=" in scripts or f"--from-file={key}=" in scripts


def test_bootstrap_writes_every_key_of_the_environment_files():
    scripts = "\n".join(s for _, _, s in run_blocks(load_workflow("bootstrap.yml")))
    for path, target in (("manifests/overlays/prod/aws.env", '"$aws_env"'),
                         ("manifests/argocd/repository.env", "manifests/argocd/repository.env")):
        keys = [line.split("=")[0] for line in (ROOT / path).read_text().splitlines() if line and not line.startswith("#")]
        written = set(re.findall(rf"set_env {re.escape(target)} (\w+)", scripts))
        assert set(keys) == written, f"{path}: file has {sorted(keys)}, bootstrap writes {sorted(written)}"


def terraform_outputs(layer):
    text = "".join(p.read_text() for p in (ROOT / "terraform" / layer).glob("*.tf"))
    return set(re.findall(r'^output\s+"(\w+)"', text, re.M))


def test_bootstrap_reads_only_outputs_that_terraform_declares():
    scripts = "\n".join(s for _, _, s in run_blocks(load_workflow("bootstrap.yml")))
    used = set(re.findall(r"\bout (infra|app) (\w+)", scripts))
    used |= {("infra", name) for name in re.findall(r"\bout (db_\w+)", scripts)}
    assert used
    missing = sorted(f"terraform/{layer} output {name}" for layer, name in used if name not in terraform_outputs(layer))
    assert not missing, f"bootstrap.yml reads undeclared outputs: {missing}"


def workflow_references(kind):
    found = set()
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        found |= set(re.findall(rf"\b{kind}\.([A-Z][A-Z0-9_]+)", path.read_text()))
    return found


def test_repository_variables_are_the_ones_terraform_bootstrap_outputs():
    text = (ROOT / "terraform" / "bootstrap" / "outputs.tf").read_text()
    block = re.search(r'output\s+"github_variables"\s*\{(.*?)\n\}', text, re.S)
    assert block, "terraform/bootstrap outputs github_variables (the workflows' repository variables)"
    provided = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s*=", block.group(1), re.M))
    missing = workflow_references("vars") - provided
    assert not missing, f"workflows read variables terraform/bootstrap does not output: {sorted(missing)}"


def test_readme_documents_every_variable_and_secret():
    readme = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section: delivery -->", 1)[1].split("<!-- section:", 1)[0]
    for name in sorted(workflow_references("vars") | workflow_references("secrets")):
        if name == "GITHUB_TOKEN":
            continue
        assert f"`{name}`" in section, f"docs/delivery.md does not document {name}"


@pytest.mark.parametrize("name", ["ci.yml", "release.yml", "terraform.yml", "bootstrap.yml"])
def test_readme_names_each_pipeline(name):
    readme = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section: delivery -->", 1)[1].split("<!-- section:", 1)[0]
    assert name in section
