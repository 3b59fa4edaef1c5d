#!/usr/bin/env bash
# Runs the post-deploy setup (mcpgw-setup) once as its ECS task, waits for the task to stop and
# fails unless the setup container exited 0: `aws ecs run-task` alone only starts a task, so a
# pipeline or an operator running it would carry on after a setup that failed.
#   scripts/run-setup-task.sh <terraform environment dir> [mcpgw-setup arguments...]
#   scripts/run-setup-task.sh terraform/environments/cloudfront-custom-domain-waf --dry-run
# Reads the environment's outputs (`terraform output`, so run it where that works: the
# backend configured, credentials for the account). The arguments replace the task's command
# (`--dry-run`, `--only realm`, ...); none = the full setup.
#
# The gateway reads its registry API key (`<prefix>/registry/gateway-api-key`) once, at start.
# Terraform creates that secret with a placeholder so the gateway starts before the first
# setup (docs/deployment.md, "first deployment"); when a run writes a new key (the first run,
# or after the key was revoked), this forces a new deployment of the gateway and waits until
# it is stable, so the new key is in use when this returns.
# Environment: MCPGW_SETUP_TASK_TIMEOUT (seconds to wait for the task; default 3600).
# Exit: 0 = setup exited 0 (and the gateway is stable); 1 = anything else, with the reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

(($# >= 1)) || die "usage: scripts/run-setup-task.sh <terraform environment dir> [mcpgw-setup arguments...]"
dir=$1
shift
[[ -d $dir ]] || die "no directory $dir (give the environment, e.g. terraform/environments/custom-domain)"
command -v aws >/dev/null || die "the AWS CLI v2 (aws) is needed"
command -v terraform >/dev/null || die "terraform is needed to read the environment's outputs"
timeout_s=${MCPGW_SETUP_TASK_TIMEOUT:-3600}

output() { terraform -chdir="$dir" output -raw "$1"; }
output_key() {
  terraform -chdir="$dir" output -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"
}
run_task=$(output setup_run_task_command) && [[ -n $run_task ]] ||
  die "the output setup_run_task_command is empty: apply the whole environment first (not certificates_only)"
region=$(output aws_region)
cluster=$(output ecs_cluster_name)
key_secret="$(output secret_prefix)/registry/gateway-api-key"
gateway_service=$(output_key ecs_service_names gateway)
log_group=$(output_key log_group_names setup)

# The AWSCURRENT version of the gateway's key, to tell whether this run replaced it.
key_version() {
  aws secretsmanager describe-secret --region "$region" --secret-id "$key_secret" --output json 2>/dev/null |
    python3 -c 'import json, sys; v = json.load(sys.stdin).get("VersionIdsToStages", {}); print(next((k for k, s in v.items() if "AWSCURRENT" in s), "none"))' ||
    echo none
}
key_before=$(key_version)

# The output is one command line with quoted arguments: split it the way the shell would.
eval "cmd=($run_task)"
if (($# > 0)); then
  overrides=$(python3 -c 'import json, sys; print(json.dumps({"containerOverrides": [{"name": "setup", "command": sys.argv[1:]}]}))' "$@")
  cmd+=(--overrides "$overrides")
fi
log "starting the setup task in $cluster ($region)${*:+ with: $*}"
task=$("${cmd[@]}" --query 'tasks[0].taskArn' --output text) ||
  die "aws ecs run-task failed (see above)"
[[ $task == arn:* ]] || die "ECS started no task (run-task answered '$task'); check the task definition and capacity"
log "task $task: waiting for it to stop (at most $timeout_s s; its log: aws logs tail $log_group --follow --region $region)"

deadline=$((SECONDS + timeout_s))
while :; do
  status=$(aws ecs describe-tasks --region "$region" --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].lastStatus' --output text)
  [[ $status == STOPPED ]] && break
  ((SECONDS < deadline)) || die "the setup task is still $status after $timeout_s s: aws ecs stop-task --cluster $cluster --task $task --region $region"
  sleep 10
done

read -r code reason < <(aws ecs describe-tasks --region "$region" --cluster "$cluster" --tasks "$task" \
  --query "[tasks[0].containers[?name=='setup'].exitCode | [0], tasks[0].stoppedReason]" --output text)
[[ $code == 0 ]] ||
  die "mcpgw-setup did not succeed: exit code $code ($reason). Its log: aws logs tail $log_group --since 1h --region $region; exit codes: docs/deployment.md#exit-codes"
log "mcpgw-setup exited 0"

if [[ $(key_version) != "$key_before" ]]; then
  log "the gateway's registry key changed: new deployment of $gateway_service, waiting until it is stable"
  aws ecs update-service --region "$region" --cluster "$cluster" --service "$gateway_service" \
    --force-new-deployment --query 'service.serviceName' --output text >/dev/null
  aws ecs wait services-stable --region "$region" --cluster "$cluster" --services "$gateway_service" ||
    die "the gateway did not become stable after its new deployment: aws ecs describe-services --cluster $cluster --services $gateway_service --region $region"
  log "the gateway runs with the new key"
fi
