#!/usr/bin/env bash
# Remove the deployment, in reverse order of creation (terraform/README.md, "Teardown").
#   scripts/teardown.sh --state-bucket BUCKET [--region R] [--cluster NAME] [--bootstrap OWNER/NAME] [--yes]
# 1. Argo CD's Application (its finalizer deletes the workloads, so the pods leave the target group),
#    the observability stack and its volumes (EBS volumes of PVCs outlive the cluster otherwise),
#    then Argo CD itself.
# 2. app, then infra: one apply with `-var teardown=true` (turns off deletion protection, lets the
#    versioned log bucket and the ECR repository be emptied, drops the secret's recovery window, so a
#    new deployment can reuse the names at once), then destroy with the same variable.
# 3. The EKS cluster: by hand, in the console (an SCP denies eks:DeleteCluster as it denies create).
# 4. --bootstrap OWNER/NAME (administrator credentials; the repository bootstrap was applied for): the state bucket and the CI roles. The state moves to
#    a local backend first (the bucket is about to go), and a *_override.tf (ignored by Git) lifts
#    prevent_destroy and lets destroy empty the versioned bucket.
# Asks to type the cluster name unless --yes. Needs terraform, kubectl (kubeconfig for the cluster),
# helm and aws on PATH, and the apply role's (or an administrator's) credentials.
set -euo pipefail

die() { echo "teardown: $*" >&2; exit 1; }

bucket="" region=eu-west-2 cluster=counter-service repository="" yes=false
while [ $# -gt 0 ]; do
  case $1 in
    --state-bucket) bucket=${2:?}; shift 2 ;;
    --region) region=${2:?}; shift 2 ;;
    --cluster) cluster=${2:?}; shift 2 ;;
    --bootstrap) repository=${2:?}; shift 2 ;;
    --yes) yes=true; shift ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
  esac
done
[ -n "$bucket" ] || die "--state-bucket is required (terraform/bootstrap output state_bucket)"
for tool in terraform kubectl helm aws; do command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"; done

root="$(cd "$(dirname "$0")/.." && pwd)"
export TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_VAR_state_bucket="$bucket" TF_VAR_aws_region="$region" TF_VAR_cluster_name="$cluster"

if [ "$yes" != true ]; then
  read -r -p "This destroys every resource of cluster '$cluster' (data included). Type its name to go on: " answer
  [ "$answer" = "$cluster" ] || die "not confirmed"
fi

echo "--- 1. workloads" >&2
kubectl -n argocd delete application counter-prod --ignore-not-found --wait --timeout=10m
kubectl -n argocd delete appproject counter --ignore-not-found
helm uninstall kube-prometheus-stack --namespace monitoring --ignore-not-found --wait
kubectl -n monitoring delete pvc --all --wait --timeout=10m
# The EBS CSI driver (an infra add-on, still running) deletes each released volume; wait for it, or
# the volumes would outlive the cluster and keep costing.
if [ -n "$(kubectl get pv -o name)" ]; then
  kubectl wait --for=delete pv --all --timeout=10m
fi
helm uninstall argocd --namespace argocd --ignore-not-found --wait

tf() { local layer=$1; shift; terraform -chdir="$root/terraform/$layer" "$@"; }

# Lift the protections (one apply with teardown=true), then destroy with the same variable.
for layer in app infra; do
  echo "--- $layer: lift the protections, then destroy" >&2
  tf "$layer" init -input=false -reconfigure -backend-config="bucket=$bucket" -backend-config="region=$region"
  tf "$layer" apply -input=false -auto-approve -var teardown=true
  if [ "$layer" = infra ]; then
    snapshot=$(tf infra output -raw db_final_snapshot_identifier)
  fi
  tf "$layer" destroy -input=false -auto-approve -var teardown=true
done
echo "RDS kept the final snapshot '$snapshot'; delete it when you no longer need it:
  aws rds delete-db-snapshot --region $region --db-snapshot-identifier $snapshot" >&2
echo "--- 3. delete the EKS cluster '$cluster' in the console (an SCP denies it to the API)" >&2

if [ -n "$repository" ]; then
  echo "--- 4. bootstrap (state bucket, CI roles)" >&2
  dir=$root/terraform/bootstrap
  terraform -chdir="$dir" init -input=false -reconfigure \
    -backend-config="bucket=$bucket" -backend-config="region=$region"
  printf 'terraform {\n  backend "local" {}\n}\n' >"$dir/local_override.tf"
  # Override files merge into the resource: lifecycle arguments one by one (Terraform docs).
  printf 'resource "aws_s3_bucket" "state" {\n  force_destroy = true\n\n  lifecycle {\n    prevent_destroy = false\n  }\n}\n' \
    >"$dir/teardown_override.tf"
  terraform -chdir="$dir" init -input=false -migrate-state -force-copy
  terraform -chdir="$dir" apply -input=false -auto-approve -var "github_repository=$repository"
  terraform -chdir="$dir" destroy -input=false -auto-approve -var "github_repository=$repository"
  rm -f "$dir/local_override.tf" "$dir/teardown_override.tf"
  echo "bootstrap destroyed; its last state is the local terraform/bootstrap/terraform.tfstate" >&2
fi
