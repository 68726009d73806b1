#!/usr/bin/env bash
# AI-OTS on AWS: a thin wrapper over Terraform (and the AWS CLI for status/put-secret) for the root
# module in deploy/aws/examples/production (or AIOTS_TF_DIR). See deploy/aws/README.md and
# docs/deploy.md for the whole path: image, certificate, secrets, apply, DNS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TF_DIR="${AIOTS_TF_DIR:-$HERE/examples/production}"
PLAN_FILE="${AIOTS_TF_PLAN:-$TF_DIR/aiots.tfplan}"

usage() {
  cat <<USAGE
Usage: deploy/aws/deploy.sh plan|apply|status|destroy
       deploy/aws/deploy.sh put-secret NAME FILE   (NAME: DATABENTO_API_KEY or AIOTS_JWKS_JSON; FILE '-' reads stdin)

  plan        terraform init + plan; the plan is saved to ${PLAN_FILE#"$HERE"/}
  apply       apply the saved plan (run 'plan' first), or plan+apply interactively if there is none
  status      terraform outputs, then running/desired tasks of every ECS service (needs the aws CLI)
  destroy     terraform destroy, after typing the environment name (AIOTS_CONFIRM=<name> skips the prompt)
  put-secret  store a secret's value in Secrets Manager (values never pass through Terraform)

Environment: AIOTS_TF_DIR (root module, default examples/production), AWS_PROFILE / AWS_REGION as usual.
Inputs: terraform.tfvars (copy terraform.tfvars.example) and backend.hcl (copy backend.hcl.example) in the root module.
USAGE
}

die() { echo "deploy.sh: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  case "$1" in
    terraform) echo "deploy.sh: terraform not found on PATH. Install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install) and retry." >&2 ;;
    aws) echo "deploy.sh: aws (AWS CLI v2) not found on PATH. Install it (https://docs.aws.amazon.com/cli/) and configure credentials." >&2 ;;
    *) echo "deploy.sh: $1 not found on PATH." >&2 ;;
  esac
  exit 127
}

tf() { (cd "$TF_DIR" && terraform "$@"); }

tf_init() {
  if [[ -f "$TF_DIR/backend.hcl" ]]; then
    tf init -input=false -backend-config=backend.hcl
  else
    tf init -input=false
  fi
}

output_json() { tf output -json "$1"; }

cmd="${1:-}"
case "$cmd" in
  -h | --help | help) usage; exit 0 ;;
  plan | apply | status | destroy) ;;
  put-secret) [[ $# -eq 3 ]] || { usage >&2; exit 2; } ;;
  *) usage >&2; exit 2 ;;
esac

[[ -d "$TF_DIR" ]] || die "no root module at $TF_DIR"
need terraform

case "$cmd" in
  plan)
    tf_init
    tf plan -input=false -out="$PLAN_FILE"
    echo "deploy.sh: plan saved to $PLAN_FILE; run 'deploy/aws/deploy.sh apply' to apply it."
    ;;
  apply)
    tf_init
    if [[ -f "$PLAN_FILE" ]]; then
      tf apply -input=false "$PLAN_FILE"
      rm -f "$PLAN_FILE"
    else
      tf apply
    fi
    tf output
    ;;
  status)
    tf output
    need aws
    cluster="$(tf output -raw cluster_name)"
    services="$(output_json ecs_services | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)))')"
    # shellcheck disable=SC2086 # word splitting of the service list is intended
    aws ecs describe-services --cluster "$cluster" --services $services \
      --query 'services[].[serviceName,status,runningCount,desiredCount,deployments[0].rolloutState]' --output table
    ;;
  destroy)
    env_name="$(basename "$TF_DIR")"
    if [[ "${AIOTS_CONFIRM:-}" != "$env_name" ]]; then
      read -r -p "Destroy AI-OTS '$env_name' (databases included, after a final snapshot)? Type '$env_name': " answer
      [[ "$answer" == "$env_name" ]] || die "not confirmed; nothing destroyed"
    fi
    tf_init
    tf destroy
    ;;
  put-secret)
    need aws
    name="$2"
    file="$3"
    arn="$(output_json secret_arns | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$name")"
    [[ -n "$arn" ]] || die "unknown secret $name (see 'terraform output secret_arns')"
    if [[ "$file" == "-" ]]; then value="$(cat)"; else value="$(cat -- "$file")"; fi
    [[ -n "$value" ]] || die "empty value for $name"
    aws secretsmanager put-secret-value --secret-id "$arn" --secret-string "$value" --query VersionId --output text
    echo "deploy.sh: $name stored; new tasks read it at start (redeploy: aws ecs update-service --force-new-deployment)."
    ;;
esac
