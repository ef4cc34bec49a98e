#!/usr/bin/env bash
# Step 2 of the deployment (terraform/README.md): set the GitHub repository variables the workflows
# read, from terraform/bootstrap's `github_variables` output (none of them is a secret), with `gh`.
#   scripts/configure-repository.sh [OWNER/NAME]   (default: the repository `gh` sees here)
# Run after scripts/bootstrap-state.sh, in the same checkout (its backend is initialised there).
# Prints which optional secrets (docs/delivery.md) are set; it never reads or writes their values.
# Creates (or updates) the `production` environment that gates every apply: deployments from `main`
# only, you as required reviewer (add others in the repository's settings), then checks it the way
# the apply workflow's preflight does. Required reviewers on a private repository need GitHub
# Enterprise; without them this step fails, because CI would otherwise apply unreviewed.
set -euo pipefail

die() { echo "configure-repository: $*" >&2; exit 1; }

for tool in terraform gh jq; do command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"; done
if [ $# -ge 1 ]; then repo=$1; else repo=$(gh repo view --json nameWithOwner --jq .nameWithOwner); fi
[[ $repo =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "'$repo' is not OWNER/NAME"
repo_args=(--repo "$repo")

dir="$(cd "$(dirname "$0")/.." && pwd)/terraform/bootstrap"
variables=$(terraform -chdir="$dir" output -json github_variables) \
  || die "cannot read terraform/bootstrap outputs (run scripts/bootstrap-state.sh first)"

count=0
while IFS=$'\t' read -r name value; do
  [ -n "$value" ] || die "github_variables.$name is empty"
  gh variable set "$name" --body "$value" "${repo_args[@]}"
  count=$((count + 1))
done < <(jq -er 'to_entries[] | [.key, (.value | tostring)] | @tsv' <<<"$variables")
[ "$count" -gt 0 ] || die "github_variables is empty"
echo "$count repository variables set" >&2

secrets=$(gh secret list --json name --jq '.[].name' "${repo_args[@]}")
for name in MANIFEST_PUSH_TOKEN ARGOCD_REPO_SSH_KEY ARGOCD_GITHUB_APP_ID ARGOCD_GITHUB_APP_INSTALLATION_ID ARGOCD_GITHUB_APP_PRIVATE_KEY; do
  if grep -qx "$name" <<<"$secrets"; then state="set"; else state="not set"; fi
  echo "secret $name: $state" >&2
done
# The production environment: main only, required reviewer. PUT is idempotent.
reviewer=$(gh api user --jq .id)
jq -n --argjson id "$reviewer" \
  '{reviewers: [{type: "User", id: $id}], deployment_branch_policy: {protected_branches: false, custom_branch_policies: true}}' |
  gh api --method PUT "repos/$repo/environments/production" --input - >/dev/null ||
  die "cannot create the production environment with a required reviewer (on a private repository that needs GitHub Enterprise; docs/delivery.md)"
policies=$(gh api "repos/$repo/environments/production/deployment-branch-policies" --jq '.branch_policies[].name')
if ! grep -qx main <<<"$policies"; then
  gh api --method POST "repos/$repo/environments/production/deployment-branch-policies" -f name=main -f type=branch >/dev/null
fi
"$(dirname "$0")/deploy/terraform-preflight.sh" environment "$repo" production >/dev/null
echo "environment production: deployments from main only, required reviewer $(gh api user --jq .login)" >&2

echo "a private repository needs ARGOCD_REPO_SSH_KEY or the three ARGOCD_GITHUB_APP_* secrets (docs/delivery.md)" >&2
echo "next: create the EKS cluster (terraform/README.md, step 3), then scripts/first-release.sh" >&2
