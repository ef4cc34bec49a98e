#!/usr/bin/env bash
# Is there anything to plan or apply yet? A fresh repository has no repository variables, and a
# layer cannot be planned before the layer it reads exists. Instead of failing with an unrelated
# error, say what is missing and let the workflow skip the rest:
#   scripts/deploy/terraform-preflight.sh variables NAME...           every env var NAME is non-empty
#   scripts/deploy/terraform-preflight.sh upstream LAYER BUCKET [CLUSTER]
#       infra: the bootstrap state exists in BUCKET and the EKS cluster CLUSTER exists;
#       app:   the infra state exists; bootstrap: nothing upstream.
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

[ $# -ge 1 ] || die "usage: $0 variables NAME... | upstream LAYER BUCKET [CLUSTER]"
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
      bootstrap) ;;
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
  *) die "unknown check '$1' (variables or upstream)" ;;
esac
