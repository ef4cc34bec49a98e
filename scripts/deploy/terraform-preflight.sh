#!/usr/bin/env bash
# Is there anything to plan or apply yet? A fresh repository has no repository variables, and a
# layer cannot be planned before the layer it reads exists. Instead of failing with an unrelated
# error, say what is missing and let the workflow skip the rest:
#   scripts/deploy/terraform-preflight.sh variables NAME...           every env var NAME is non-empty
#   scripts/deploy/terraform-preflight.sh upstream LAYER BUCKET [CLUSTER]
#       infra: the bootstrap state exists in BUCKET and the EKS cluster CLUSTER exists;
#       app:   the infra state exists; bootstrap: its committed terraform.tfvars (step 1's variables).
#   scripts/deploy/terraform-preflight.sh environment OWNER/NAME ENVIRONMENT
#       the GitHub environment exists with at least one required reviewer and a deployment-branch
#       policy; refuses (exit 1) otherwise. The apply job's only review is that environment: on a
#       private repository without GitHub Enterprise it cannot have required reviewers (a Free plan has
#       no environments at all there), and the job would then apply unreviewed. Needs `gh` and a token
#       that may read the repository's environments (GITHUB_TOKEN with actions: read).
# Writes ready=true|false to $GITHUB_OUTPUT (stdout when unset) and a ::notice:: naming what is
# missing; exits non-zero only when it cannot tell (an AWS error other than "not found").
set -euo pipefail

die() { echo "terraform-preflight: $*" >&2; exit 1; }

result() {
  local ready=$1
  echo "ready=$ready" >>"${GITHUB_OUTPUT:-/dev/stdout}"
}

skip() {
  echo "::notice title=Terraform skipped::$*"
  result false
  exit 0
}

# state_exists BUCKET KEY — true when the object exists, false when S3 says 404; dies otherwise.
state_exists() {
  local out
  if out=$(aws s3api head-object --bucket "$1" --key "$2" 2>&1 >/dev/null); then
    return 0
  elif grep -qE '\(404\)|Not Found|NoSuchKey' <<<"$out"; then
    return 1
  fi
  die "cannot read s3://$1/$2: $out"
}

[ $# -ge 1 ] || die "usage: $0 variables NAME... | upstream LAYER BUCKET [CLUSTER] | environment OWNER/NAME ENVIRONMENT"
case $1 in
  variables)
    shift
    [ $# -ge 1 ] || die "variables: name at least one variable"
    missing=()
    for name in "$@"; do
      [[ $name =~ ^[A-Z][A-Z0-9_]*$ ]] || die "not a variable name: $name"
      [ -n "${!name:-}" ] || missing+=("$name")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      skip "repository variables not set: ${missing[*]}. Set them with scripts/configure-repository.sh (terraform/README.md, step 2)."
    fi
    result true
    ;;
  upstream)
    [ $# -ge 3 ] || die "usage: $0 upstream LAYER BUCKET [CLUSTER]"
    layer=$2 bucket=$3 cluster=${4:-}
    case $layer in
      bootstrap)
        # Planned with other variables than the administrator applied (create_github_oidc_provider
        # defaulting to true, say), the plan would show changes that are not there.
        [ -f "$(dirname "$0")/../../terraform/bootstrap/terraform.tfvars" ] \
          || skip "bootstrap is planned with the variables of step 1, and terraform/bootstrap/terraform.tfvars is not committed (scripts/bootstrap-state.sh writes it)."
        ;;
      infra)
        state_exists "$bucket" bootstrap/terraform.tfstate \
          || skip "infra reads the bootstrap layer's state, and s3://$bucket/bootstrap/terraform.tfstate does not exist yet (scripts/bootstrap-state.sh)."
        [ -n "$cluster" ] || die "infra: name the EKS cluster"
        if ! out=$(aws eks describe-cluster --name "$cluster" --query cluster.status --output text 2>&1); then
          grep -q ResourceNotFoundException <<<"$out" || die "cannot describe EKS cluster $cluster: $out"
          skip "infra attaches to the EKS cluster '$cluster', which does not exist yet (created by hand, terraform/README.md)."
        fi
        ;;
      app)
        state_exists "$bucket" infra/terraform.tfstate \
          || skip "app reads the infra layer's state, and s3://$bucket/infra/terraform.tfstate does not exist yet (apply infra first)."
        ;;
      *) die "unknown layer '$layer'" ;;
    esac
    result true
    ;;
  environment)
    [ $# -eq 3 ] || die "usage: $0 environment OWNER/NAME ENVIRONMENT"
    repo=$2 environment=$3
    if ! out=$(gh api "repos/$repo/environments/$environment" 2>&1); then
      grep -q "HTTP 404" <<<"$out" || die "cannot read environment '$environment' of $repo: $out"
      die "environment '$environment' does not exist in $repo: nothing would review the apply. Create it with scripts/configure-repository.sh (terraform/README.md, step 2)."
    fi
    reviewers=$(jq '[.protection_rules[]? | select(.type == "required_reviewers") | .reviewers[]?] | length' <<<"$out")
    if [ "$reviewers" -eq 0 ]; then
      die "environment '$environment' of $repo has no required reviewers, so an apply would run unreviewed. On a private repository they need GitHub Enterprise (docs/delivery.md); without it, apply infra and app from an administrator's machine instead."
    fi
    [ "$(jq '.deployment_branch_policy != null' <<<"$out")" = true ] ||
      die "environment '$environment' of $repo admits every branch: restrict it to main (scripts/configure-repository.sh)"
    result true
    ;;
  *) die "unknown check '$1' (variables, upstream or environment)" ;;
esac
