#!/usr/bin/env bash
# Remove the deployment, in reverse order of creation (terraform/README.md, "Teardown").
#   scripts/teardown.sh --state-bucket BUCKET [--region R] [--cluster NAME] [--delete-backups] [--bootstrap] [--yes]
# 1. Argo CD's Application (its finalizer deletes the workloads, so the pods leave the target group),
#    the observability stack and its volumes (EBS volumes of PVCs outlive the cluster otherwise),
#    then Argo CD itself.
# 2. app, then infra: one apply with `-var teardown=true` (turns off deletion protection, lets the
#    versioned log bucket and the ECR repository be emptied, drops the secret's recovery window, so a
#    new deployment can reuse the names at once), then destroy with the same variable.
#    Before infra's destroy, the EKS control-plane log group is forgotten (state rm), not destroyed:
#    the cluster still exists and logs to it, and EKS would recreate it at once without a retention.
#    Delete it after the cluster (the command is printed). RDS keeps its automated backups after the
#    instance (delete_automated_backups = false, so a deleted database can still be restored for the
#    retention period); they are billed until they expire. --delete-backups deletes them too.
# 3. The EKS cluster: by hand, in the console (an SCP denies eks:DeleteCluster as it denies create).
# 4. --bootstrap (administrator credentials): the state bucket and the CI roles, with the variables
#    step 1 committed in terraform/bootstrap/terraform.tfvars (scripts/bootstrap-state.sh). The state
#    moves to a local backend first (the bucket is about to go), and a *_override.tf (ignored by Git)
#    lifts prevent_destroy and lets destroy empty the versioned bucket.
# Asks to type the cluster name unless --yes. Needs terraform, kubectl (kubeconfig for the cluster),
# helm and aws on PATH, and the apply role's (or an administrator's) credentials.
set -euo pipefail

die() { echo "teardown: $*" >&2; exit 1; }

bucket="" region=eu-west-2 cluster=counter-service bootstrap=false delete_backups=false yes=false
while [ $# -gt 0 ]; do
  case $1 in
    --state-bucket) bucket=${2:?}; shift 2 ;;
    --region) region=${2:?}; shift 2 ;;
    --cluster) cluster=${2:?}; shift 2 ;;
    --bootstrap) bootstrap=true; shift ;;
    --delete-backups) delete_backups=true; shift ;;
    --yes) yes=true; shift ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
  esac
done
[ -n "$bucket" ] || die "--state-bucket is required (terraform/bootstrap output state_bucket)"
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$bootstrap" = true ] && [ ! -f "$root/terraform/bootstrap/terraform.tfvars" ]; then
  die "--bootstrap needs terraform/bootstrap/terraform.tfvars (written by scripts/bootstrap-state.sh in step 1): without it the destroy would plan with other variables than the apply"
fi
for tool in terraform kubectl helm aws; do command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH"; done

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
    db_resource_id=$(tf infra output -raw db_resource_id)
    # Forgotten, not destroyed: the cluster outlives this destroy and EKS would recreate the group
    # without a retention (Terraform >= 1.8 does not re-import during a destroy).
    # Read the whole list first: `grep -q` exits at the first match, and under pipefail the
    # writer's SIGPIPE would make the condition false now and then.
    resources=$(tf infra state list)
    if grep -qx aws_cloudwatch_log_group.control_plane <<<"$resources"; then
      tf infra state rm aws_cloudwatch_log_group.control_plane
    fi
  fi
  tf "$layer" destroy -input=false -auto-approve -var teardown=true
done
echo "RDS kept the final snapshot '$snapshot'; delete it when you no longer need it:
  aws rds delete-db-snapshot --region $region --db-snapshot-identifier $snapshot" >&2
if [ "$delete_backups" = true ]; then
  aws rds delete-db-instance-automated-backup --region "$region" --dbi-resource-id "$db_resource_id" >/dev/null
  echo "RDS automated backups of $db_resource_id deleted" >&2
else
  echo "RDS keeps the automated backups of $db_resource_id for their retention period (billed until they expire); delete them with:
  aws rds delete-db-instance-automated-backup --region $region --dbi-resource-id $db_resource_id" >&2
fi
echo "--- 3. delete the EKS cluster '$cluster' in the console (an SCP denies it to the API), then its
control-plane log group (kept with its retention while the cluster logged to it):
  aws logs delete-log-group --region $region --log-group-name /aws/eks/$cluster/cluster" >&2

if [ "$bootstrap" = true ]; then
  echo "--- 4. bootstrap (state bucket, CI roles)" >&2
  dir=$root/terraform/bootstrap
  terraform -chdir="$dir" init -input=false -reconfigure \
    -backend-config="bucket=$bucket" -backend-config="region=$region"
  printf 'terraform {\n  backend "local" {}\n}\n' >"$dir/local_override.tf"
  # Override files merge into the resource: lifecycle arguments one by one (Terraform docs).
  printf 'resource "aws_s3_bucket" "state" {\n  force_destroy = true\n\n  lifecycle {\n    prevent_destroy = false\n  }\n}\n' \
    >"$dir/teardown_override.tf"
  terraform -chdir="$dir" init -input=false -migrate-state -force-copy
  # terraform.tfvars (step 1's variables) is loaded by Terraform itself.
  terraform -chdir="$dir" apply -input=false -auto-approve
  terraform -chdir="$dir" destroy -input=false -auto-approve
  rm -f "$dir/local_override.tf" "$dir/teardown_override.tf"
  echo "bootstrap destroyed; its last state is the local terraform/bootstrap/terraform.tfstate" >&2
fi
