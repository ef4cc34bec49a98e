"""Invariants of the GitHub Actions workflows that actionlint does not check: supply chain (actions
pinned to commits), least privilege, no static cloud keys, no hidden failures, and the wiring
between the workflows and the parts they deploy (Terraform outputs, manifests, README)."""

import re
import shutil
import subprocess

import pytest

from conftest import ROOT, load_workflow, load_yaml, run_blocks

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Jobs that may write to the repository, and why: the release tag commit and the bootstrap's
# environment bindings. Anything else asking for contents: write is a finding.
CONTENTS_WRITERS = {("release.yml", "pin"), ("bootstrap.yml", "deploy"), ("bootstrap.yml", "release")}


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
        if set(workflow["on"]) == {"workflow_call"}:
            jobs = workflow["jobs"].values()
            assert all("concurrency" in job for job in jobs), f"{name}: reusable jobs need their own group"
        else:
            assert "group" in workflow.get("concurrency", {}), f"{name} has no concurrency group"


def test_applies_and_releases_are_never_cancelled_half_way(workflows):
    assert workflows["release.yml"]["concurrency"]["cancel-in-progress"] is False
    assert workflows["bootstrap.yml"]["concurrency"]["cancel-in-progress"] is False
    assert workflows["terraform-apply.yml"]["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False
    assert workflows["terraform-apply.yml"]["jobs"]["plan"]["concurrency"]["cancel-in-progress"] is False


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


def test_ci_runs_the_test_command_and_builds_both_architectures():
    ci = load_workflow("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    scripts = {job_id: "\n".join(s for _, _, s in run_blocks({"jobs": {job_id: job}})) for job_id, job in ci["jobs"].items()}
    everything = "\n".join(scripts.values())
    assert re.search(r"^make test$", everything, re.M), "ci.yml runs the README's test command"
    # The terraform suite refuses to run without the pinned terraform binary on PATH.
    test_steps = ci["jobs"]["test"]["steps"]
    uses = [s.get("uses", "") for s in test_steps]
    setup = next(i for i, u in enumerate(uses) if "hashicorp/setup-terraform" in u)
    make = next(i for i, s in enumerate(test_steps) if s.get("run") == "make test")
    assert setup < make
    assert test_steps[setup]["with"]["terraform_version"] == "${{ steps.terraform-version.outputs.version }}"
    builds = [s for job in ci["jobs"].values() for s in job.get("steps", []) if "build-push-action" in s.get("uses", "")]
    assert len(builds) == 1
    build = builds[0]["with"]
    assert build["push"] is False
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["file"] == "origin/Dockerfile" and build["context"] == "."


def test_make_lint_is_the_ci_lint_job(workflows):
    """One lint gate: CI's lint job runs `make lint` and nothing else but toolchain setup, no
    workflow spells a cargo lint itself, and the recipe (as make reads it) holds both gates."""
    runs = [s["run"].strip() for s in load_workflow("ci.yml")["jobs"]["rust-lint"]["steps"] if "run" in s]
    checks = [r for r in runs if not r.startswith("rustup component add ")]
    assert checks == ["make lint"], f"ci.yml rust-lint must run `make lint` only, runs {checks}"
    for name, workflow in workflows.items():
        for job_id, step, script in run_blocks(workflow):
            assert not re.search(r"cargo (fmt|clippy)", script), f"{name}:{job_id}:{step}: lint in the Makefile's `lint`"
    make = shutil.which("make")
    assert make, "make is required (apt-get install make)"
    recipe = subprocess.run([make, "--dry-run", "--no-print-directory", "lint"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert recipe.returncode == 0, recipe.stderr
    assert recipe.stdout.splitlines() == [
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
    ]


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
    assert terraform["jobs"]["preflight"]["if"].endswith("github.ref == 'refs/heads/main'")
    assert terraform["jobs"]["apply-infra"]["needs"] == "preflight"
    assert terraform["jobs"]["apply-infra"]["if"] == "needs.preflight.outputs.ready == 'true'"
    assert terraform["jobs"]["apply-app"]["needs"] == "apply-infra"
    applied = [job["with"]["layer"] for job in terraform["jobs"].values() if job.get("uses", "").endswith("terraform-apply.yml")]
    assert "bootstrap" not in applied, "CI never applies the layer that defines its own roles"
    for path in ("terraform/**", "edge/**"):
        assert path in terraform["on"]["pull_request"]["paths"] and path in terraform["on"]["push"]["paths"]

    plan_job = load_workflow("terraform-plan.yml")["jobs"]["plan"]
    plan_script = "\n".join(s for _, _, s in run_blocks({"jobs": {"plan": plan_job}}))
    for command in ("terraform fmt -check", "terraform init", "terraform validate", "terraform plan", "GITHUB_STEP_SUMMARY"):
        assert command in plan_script
    assert "environment" not in plan_job


def test_plans_and_first_pushes_skip_with_a_notice_when_nothing_can_run_yet():
    """Issue 12 #17: PR plans of infra/app failed before those layers existed, and the first push
    to main applied before the repository variables were set."""
    plan_job = load_workflow("terraform-plan.yml")["jobs"]["plan"]
    ids = [s.get("id") for s in plan_job["steps"]]
    assert ids.index("variables") < ids.index("upstream")
    credentials = next(i for i, s in enumerate(plan_job["steps"]) if "configure-aws-credentials" in s.get("uses", ""))
    assert ids.index("variables") < credentials < ids.index("upstream")
    for step in plan_job["steps"][ids.index("upstream") + 1:]:
        assert step.get("if") == "steps.upstream.outputs.ready == 'true'", step.get("name", step.get("run"))
    assert plan_job["steps"][credentials]["if"] == "steps.variables.outputs.ready == 'true'"
    terraform = load_workflow("terraform.yml")
    preflight = terraform["jobs"]["preflight"]["steps"][-1]
    assert preflight["run"].startswith("scripts/deploy/terraform-preflight.sh variables")
    for layer_job in ("apply-infra", "apply-app"):
        assert terraform["jobs"][layer_job]["with"]["skip-when-upstream-missing"] is True
    bootstrap = load_workflow("bootstrap.yml")
    assert "skip-when-upstream-missing" not in bootstrap["jobs"]["infra"]["with"], "the bootstrap fails instead"


def test_apply_plans_first_and_applies_only_the_approved_saved_plan():
    """Issue 12 #13: reviewers approved before any plan existed. Now the plan job (read-only role, no
    environment) saves and shows the plan; the environment gate sits on the apply job, which applies
    that saved plan after checking its SHA-256 against the plan job's output."""
    workflow = load_workflow("terraform-apply.yml")
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    assert "environment" not in plan, "the plan must exist before anyone is asked to approve"
    plan_role = next(s for s in plan["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert plan_role["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_TERRAFORM_PLAN }}"
    plan_script = "\n".join(s for _, _, s in run_blocks({"jobs": {"plan": plan}}))
    assert "terraform plan -lock-timeout=10m -detailed-exitcode -out=tfplan" in plan_script
    assert 'aws s3 cp --only-show-errors tfplan "s3://$TF_STATE_BUCKET/$PLAN_KEY"' in plan_script
    assert "GITHUB_STEP_SUMMARY" in plan_script
    assert workflow["env"]["PLAN_KEY"].startswith("plans/${{ github.run_id }}-${{ github.run_attempt }}/")

    assert apply["needs"] == "plan" and apply["environment"] == "production"
    assert apply["if"] == "needs.plan.outputs.changes == 'true'"
    apply_role = next(s for s in apply["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert apply_role["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_TERRAFORM_APPLY }}"
    apply_script = "\n".join(s for _, _, s in run_blocks({"jobs": {"apply": apply}}))
    assert "terraform plan" not in apply_script, "the apply job never plans again"
    assert "sha256sum --check --strict" in apply_script
    fetch = apply_script.index("aws s3 cp")
    assert fetch < apply_script.index("sha256sum --check") < apply_script.index("terraform apply -lock-timeout=10m tfplan")
    assert "-auto-approve" not in apply_script
    # Layer directories and the Terraform version file the workflows read.
    assert (ROOT / "terraform" / ".terraform-version").is_file()


def test_bootstrap_runs_the_six_stages_in_order():
    """Issue 12 #3: the first deploy waited for an image nobody built. The release workflow runs as a
    stage before Argo CD exists, and the deploy stage refuses an overlay that pins no image of this
    account's ECR."""
    bootstrap = load_workflow("bootstrap.yml")
    assert set(bootstrap["on"]) == {"workflow_dispatch"}
    order = ["infra", "app", "release", "argocd", "observability", "deploy"]
    assert list(bootstrap["jobs"]) == order
    for before, after in zip(order, order[1:]):
        needs = bootstrap["jobs"][after]["needs"]
        assert before in ([needs] if isinstance(needs, str) else needs), f"{after} must need {before}"
    assert bootstrap["jobs"]["infra"]["if"] == "github.ref == 'refs/heads/main'", "the pin commit goes to main"
    assert bootstrap["jobs"]["release"]["uses"] == "./.github/workflows/release.yml"
    # Least privilege for secrets too: the called release gets the pin token and nothing else.
    assert bootstrap["jobs"]["release"]["secrets"] == {"MANIFEST_PUSH_TOKEN": "${{ secrets.MANIFEST_PUSH_TOKEN }}"}
    assert "workflow_call" in load_workflow("release.yml")["on"]
    for job_id in order[3:]:
        assert bootstrap["jobs"][job_id]["environment"] == "production"
    for key in ("ARGOCD_CHART_VERSION", "KUBE_PROMETHEUS_STACK_CHART_VERSION", "HELM_VERSION"):
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", str(bootstrap["env"][key])), f"{key} must be an exact version"
    scripts = "\n".join(s for _, _, s in run_blocks(bootstrap))
    installs = re.findall(r"helm upgrade --install[^\n]*", scripts)
    assert len(installs) == 2 and all("--version" in i and "--wait" in i for i in installs)
    deploy = "\n".join(s for _, _, s in run_blocks({"jobs": {"deploy": bootstrap["jobs"]["deploy"]}}))
    assert deploy.index("aws ecr describe-images") < deploy.index("kubectl apply -k manifests/argocd"), \
        "the pinned image exists before the Application is registered"
    assert "ecr_repository_url" in deploy and "sha-[0-9a-f]{40}" in deploy


def test_release_pushes_no_attestation_manifests():
    """Issue 12 #19: buildx's provenance/SBOM attestations land in ECR as untagged manifests that no
    lifecycle rule may safely expire."""
    build = next(s for s in load_workflow("release.yml")["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["provenance"] is False and build["with"]["sbom"] is False


def test_argocd_repository_credential_comes_from_pipeline_secrets():
    """Issue 12 #4: a private repository needs a credential Argo CD can read; it is created from
    pipeline secrets by the bootstrap (never in Git)."""
    job = load_workflow("bootstrap.yml")["jobs"]["argocd"]
    step = next(s for s in job["steps"] if s.get("id") == "repository")
    assert set(step["env"]) == {"ARGOCD_REPO_SSH_KEY", "ARGOCD_GITHUB_APP_ID", "ARGOCD_GITHUB_APP_INSTALLATION_ID",
                                "ARGOCD_GITHUB_APP_PRIVATE_KEY"}
    assert all(v == f"${{{{ secrets.{k} }}}}" for k, v in step["env"].items())
    assert 'scripts/deploy/argocd-repository.sh secret "$GITHUB_REPOSITORY"' in step["run"]
    assert job["outputs"]["repo_url"] == "${{ steps.repository.outputs.url }}"
    deploy = load_workflow("bootstrap.yml")["jobs"]["deploy"]
    binding = next(s for s in deploy["steps"] if "bind-environment.sh" in s.get("run", ""))
    assert binding["env"]["REPO_URL"] == "${{ needs.argocd.outputs.repo_url }}"


def test_no_secret_is_applied_client_side():
    """Issue 12 #16: client-side `kubectl apply` keeps the whole object, plaintext included, in the
    last-applied-configuration annotation (the old bootstrap piped the database Secret into it).
    Objects built in a pipeline are applied server-side; the only client-side `apply -f -` left
    applies a Namespace, which holds nothing secret."""
    sources = {f"bootstrap.yml:{job}:{step}": script for job, step, script in run_blocks(load_workflow("bootstrap.yml"))}
    sources |= {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "scripts").rglob("*.sh")}
    for where, text in sources.items():
        for line in re.sub(r"\\\n\s*", " ", text).splitlines():
            if re.search(r"kubectl apply (?!--server-side)[^|]*-f -", line):
                assert "create namespace" in line, f"{where}: client-side apply of a piped object: {line.strip()}"
    repository = (ROOT / "scripts" / "deploy" / "argocd-repository.sh").read_text()
    assert "kubectl apply --server-side" in repository and "--dry-run=client" in repository


def test_bootstrap_keeps_credentials_off_command_lines_and_copies_no_database_password():
    blocks = [s for _, _, s in run_blocks(load_workflow("bootstrap.yml"))]
    scripts = "\n".join(blocks)
    assert not re.search(r"--from-literal=\S*(password|DATABASE_URL)", scripts, re.I)
    assert not re.search(r"--(arg|argjson)\s+\w*pass", scripts, re.I)
    # Issue 13: the master password is never read by the pipeline; the legacy Secret is removed.
    assert "get-secret-value" not in scripts
    assert "delete secret counter-origin-db --ignore-not-found" in scripts


# --- wiring to the other parts --------------------------------------------------------------------


def rendered_names():
    deployment = load_yaml(ROOT / "manifests" / "base" / "origin" / "deployment.yaml")
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
    # Issue 13: the database Secret is gone (IAM authentication); until the manifests drop their
    # reference to it (deploy-k8s, same change), it is the one Secret the bootstrap no longer makes.
    for ref in (r for r in refs if r["name"] != "counter-origin-db"):
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


# The aws.env keys the bootstrap writes (the contract between the bootstrap and the prod overlay).
BINDINGS = {
    "manifests/overlays/prod/aws.env": {
        "ALB_SECURITY_GROUP_ID", "TARGET_GROUP_NAME", "ADOT_COLLECTOR_ROLE_ARN", "VPC_CIDR", "REGION",
        "CLUSTER_NAME", "DATABASE_URL", "DATABASE_MASTER_SECRET_ARN", "ALERTS_TOPIC_ARN", "HEARTBEAT_TOPIC_ARN",
        "ALERTS_TOPIC_REGION",
    },
    "manifests/argocd/repository.env": {"REPO_URL"},
    "manifests/overlays/prod/repository.env": {"REPO_OWNER", "REPO_NAME"},
}


def test_bootstrap_writes_every_key_of_the_environment_files():
    script = (ROOT / "scripts" / "deploy" / "bind-environment.sh").read_text()
    for path, target in (("manifests/overlays/prod/aws.env", '"$aws_env"'),
                         ("manifests/argocd/repository.env", '"$repository_env"'),
                         ("manifests/overlays/prod/repository.env", '"$links_env"')):
        keys = {line.split("=")[0] for line in (ROOT / path).read_text().splitlines() if line and not line.startswith("#")}
        written = set(re.findall(rf"set_env {re.escape(target)} (\w+)", script))
        assert written == BINDINGS[path], f"{path}: bind-environment.sh writes {sorted(written)}"
        assert keys <= written, f"{path} has keys {sorted(keys - written)} that the bootstrap never writes"


def terraform_outputs(layer):
    text = "".join(p.read_text() for p in (ROOT / "terraform" / layer).glob("*.tf"))
    return set(re.findall(r'^output\s+"(\w+)"', text, re.M))


def test_bootstrap_reads_only_outputs_that_terraform_declares():
    scripts = "\n".join(s for _, _, s in run_blocks(load_workflow("bootstrap.yml")))
    scripts += (ROOT / "scripts" / "deploy" / "bind-environment.sh").read_text()
    used = set(re.findall(r'\bout "\$(infra|app)_json" (\w+)', scripts))
    used |= set(re.findall(r"jq -er '\.(\w+)\.value(?:\[\])?' \"\$RUNNER_TEMP/(infra|app)\.json\"", scripts))
    used = {(a, b) if a in ("infra", "app") else (b, a) for a, b in used}
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


def test_paging_alarms_are_armed_only_after_the_deploy_succeeded():
    """W6: the heartbeat and public-URL alarms treat missing data as breaching, so they paged through
    every bootstrap (and forever after a failed one). Terraform creates them with actions off and
    leaves that switch to the deploy stage, which enables them as its last step."""
    alerts = (ROOT / "terraform" / "app" / "alerts.tf").read_text()
    for name in ("heartbeat", "public_url"):
        body = re.search(rf'resource "aws_cloudwatch_metric_alarm" "{name}" \{{(.*?)\n\}}', alerts, re.S).group(1)
        assert 'treat_missing_data  = "breaching"' in body
        assert "actions_enabled = false" in body, f"{name}: must be created silent"
        assert "ignore_changes = [actions_enabled]" in body, f"{name}: an apply would silence it again"
    outputs = (ROOT / "terraform" / "app" / "outputs.tf").read_text()
    assert re.search(r'output "paging_alarm_names" \{[^}]*heartbeat\.alarm_name, aws_cloudwatch_metric_alarm\.public_url\.alarm_name', outputs)
    steps = load_workflow("bootstrap.yml")["jobs"]["deploy"]["steps"]
    names = [step.get("name", "") for step in steps]
    assert names[-1] == "Arm the paging alarms", "arming must come after the Application is Synced and Healthy"
    assert "Register the Argo CD project and Application, then sync" in names[:-1]
    run = steps[-1]["run"]
    assert "paging_alarm_names" in run and "aws cloudwatch enable-alarm-actions" in run and "alerts_topic_region" in run
