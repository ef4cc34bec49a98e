#!/usr/bin/env bash
# Step 4 of the deployment (terraform/README.md): run the bootstrap workflow on main and follow it
# to the end: Terraform infra and app (each plan waits for approval in the `production`
# environment), the first image built, pushed and pinned, Argo CD, the observability stack, deploy.
#   scripts/first-release.sh [OWNER/NAME]
# Refuses to start while a repository variable the workflows need is unset.
set -euo pipefail

die() { echo "first-release: $*" >&2; exit 1; }

readonly REQUIRED=(AWS_REGION TF_STATE_BUCKET AWS_ROLE_TERRAFORM_PLAN AWS_ROLE_TERRAFORM_APPLY AWS_ROLE_RELEASE
  ECR_REPOSITORY EKS_CLUSTER_NAME)

command -v gh >/dev/null 2>&1 || die "gh is required on PATH"
repo_args=()
[ $# -eq 0 ] || repo_args=(--repo "$1")

present=$(gh variable list --json name --jq '.[].name' "${repo_args[@]}")
missing=()
for name in "${REQUIRED[@]}"; do grep -qx "$name" <<<"$present" || missing+=("$name"); done
[ ${#missing[@]} -eq 0 ] || die "repository variables not set: ${missing[*]} (scripts/configure-repository.sh)"

before=$(gh run list --workflow bootstrap.yml --branch main --limit 1 --json databaseId --jq '.[0].databaseId // 0' "${repo_args[@]}")
gh workflow run bootstrap.yml --ref main "${repo_args[@]}"
# The new run appears asynchronously; wait for an id different from the previous newest one.
run=$before
for _ in $(seq 1 30); do
  run=$(gh run list --workflow bootstrap.yml --branch main --limit 1 --json databaseId --jq '.[0].databaseId // 0' "${repo_args[@]}")
  [ "$run" != "$before" ] && break
  sleep 2
done
[ "$run" != "$before" ] || die "the bootstrap run did not appear within a minute"
echo "bootstrap run $run: approve each Terraform apply in the production environment when its plan is shown" >&2
gh run watch "$run" --exit-status "${repo_args[@]}"
