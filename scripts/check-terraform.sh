#!/usr/bin/env bash
# Static checks of terraform/, needing no AWS account and no network beyond PyPI (once, for the
# scanners):
#   1. `terraform fmt -check -recursive terraform`;
#   2. `terraform init -backend=false` against the local provider mirror and `terraform validate`
#      in every directory holding *.tf (modules, environments, bootstrap-state);
#   3. `terraform test` where a directory has tests/*.tftest.hcl: plans and applies against a
#      mocked AWS provider, which catches what validate cannot (cycles, unknown counts, failing
#      validations and preconditions);
#   3b. every deploy/*.tfvars of an environment (the release pipeline's staging and prod) passes
#      that environment's variable validations and sets only declared variables;
#   4. checkov and trivy (config) over terraform/: zero findings allowed; every exception is a
#      `checkov:skip=CKV_…:reason` or `#trivy:ignore:AVD-…  reason` comment at the resource.
# Working directories (TF_DATA_DIR), scanner caches and reports live under
# $MCPGW_CACHE_DIR/terraform, so the checkout stays clean. Idempotent; prints a summary.
#   bash scripts/check-terraform.sh
# Environment: MCPGW_TF_PLUGIN_DIR (default /opt/tf-plugins) = a `terraform providers mirror`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

PLUGIN_DIR=${MCPGW_TF_PLUGIN_DIR:-/opt/tf-plugins}
WORK=$MCPGW_CACHE_DIR/terraform
mkdir -p "$WORK"
started=$SECONDS

# No ~/.terraformrc, no checkpoint calls, no prompts: the same behaviour on every machine.
export TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

# --- prerequisites ------------------------------------------------------------------------------

command -v terraform >/dev/null ||
  die "terraform is not installed: install Terraform 1.7 or newer (1.11 is what this repository is checked with) and re-run"
tf_version=$(terraform version -json | python3 -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])')
[[ $(printf '%s\n1.7.0\n' "$tf_version" | sort -V | head -n1) == 1.7.0 ]] ||
  die "terraform $tf_version is too old: the mocked-provider tests need 1.7 or newer"
ls "$PLUGIN_DIR"/registry.terraform.io/hashicorp/aws/5.*/*/terraform-provider-aws_* >/dev/null 2>&1 ||
  die "no AWS provider 5.x in the mirror $PLUGIN_DIR: on a machine with registry access run
  (cd terraform/environments/cloudfront-only && terraform providers mirror $PLUGIN_DIR)
and copy $PLUGIN_DIR here, or point MCPGW_TF_PLUGIN_DIR at such a mirror"

# --- 1. formatting --------------------------------------------------------------------------------

log "terraform fmt -check -recursive terraform"
terraform fmt -check -recursive -diff terraform >&2 ||
  die "terraform files are not formatted: run 'terraform fmt -recursive terraform' and commit"

# --- 2 and 3. init, validate, test ------------------------------------------------------------------

# A module that declares configuration_aliases (it needs aws.us_east_1) cannot be validated on its
# own: validate wants that provider configured. Such a module is validated in its own scratch
# copy of terraform/modules with one extra file configuring it (its own copy, so the module it
# calls keeps no such file).
ALIASED=$WORK/aliased
rm -rf "$ALIASED"

# environments/shared holds files the environments link to (outputs, versions; not the
# variables: trivy does not follow links); not a root of its own, validated through each environment.
mapfile -t dirs < <(find terraform -name '*.tf' -not -path '*/.terraform/*' -not -path 'terraform/environments/shared/*' -printf '%h\n' | sort -u)
((${#dirs[@]} > 0)) || die "found no *.tf under terraform/"
n_modules=0 n_envs=0 n_other=0 n_tests=0 n_varfiles=0
for dir in "${dirs[@]}"; do
  slug=${dir//\//_}
  run_dir=$dir
  if grep -qs 'configuration_aliases' "$dir"/*.tf && ! grep -qsE '^provider "aws"' "$dir"/*.tf; then
    mkdir -p "$ALIASED/$slug" && cp -r terraform/modules "$ALIASED/$slug/"
    run_dir=$ALIASED/$slug/modules/${dir#terraform/modules/}
    cat >"$run_dir/zz_check_terraform_providers.tf" <<'EOF'
# Added by scripts/check-terraform.sh in a scratch copy only, so `terraform validate` can run.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}
EOF
  fi
  had_lock=0
  [[ -e $run_dir/.terraform.lock.hcl ]] && had_lock=1
  export TF_DATA_DIR=$WORK/data/$slug
  log "validate $dir"
  if ! out=$(terraform -chdir="$run_dir" init -backend=false -plugin-dir="$PLUGIN_DIR" -no-color 2>&1); then
    die "terraform init failed in $dir:"$'\n'"$out"
  fi
  if ! out=$(terraform -chdir="$run_dir" validate -no-color 2>&1); then
    ((had_lock)) || rm -f "$run_dir/.terraform.lock.hcl"
    die "terraform validate failed in $dir:"$'\n'"$out"
  fi
  if compgen -G "$run_dir/tests/*.tftest.hcl" >/dev/null; then
    log "test $dir (mocked AWS provider)"
    if ! out=$(terraform -chdir="$run_dir" test -no-color 2>&1); then
      ((had_lock)) || rm -f "$run_dir/.terraform.lock.hcl"
      die "terraform test failed in $dir:"$'\n'"$out"
    fi
    n_tests=$((n_tests + $(grep -c '^  run ".*"\.\.\. pass' <<<"$out" || true)))
  fi
  # The release pipeline's variable files (deploy/<environment>.tfvars): every value passes the
  # environment's validations and names a declared variable. image_tags come from the release.
  for vars in "$run_dir"/deploy/*.tfvars; do
    [[ -e $vars ]] || continue
    log "variables ${vars#"$run_dir"/} of $dir"
    if ! out=$(echo 'var.environment' | terraform -chdir="$run_dir" console -no-color -var-file="deploy/${vars##*/}" \
      -var 'image_tags={registry="v0",auth-server="v0",gateway="v0",setup="v0",keycloak="0",db-init="0"}' 2>&1) ||
      grep -qi 'undeclared variable' <<<"$out"; then
      ((had_lock)) || rm -f "$run_dir/.terraform.lock.hcl"
      die "the variable file $vars does not fit $dir:"$'\n'"$out"
    fi
    n_varfiles=$((n_varfiles + 1))
  done
  # The lock file records only this mirror's linux_amd64 hashes: never leave one behind.
  ((had_lock)) || rm -f "$run_dir/.terraform.lock.hcl"
  case $dir in
    terraform/modules/*) n_modules=$((n_modules + 1)) ;;
    terraform/environments/*) n_envs=$((n_envs + 1)) ;;
    *) n_other=$((n_other + 1)) ;;
  esac
done
unset TF_DATA_DIR

# --- 4. scanners ---------------------------------------------------------------------------------

# Every exception must say why, next to the resource it exempts.
bad=$(grep -rnE --include='*.tf' 'checkov:skip=' terraform | grep -vE 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:.{15,}' || true)
[[ -z $bad ]] || die "checkov skips without a reason (write checkov:skip=CKV_…:<why>):"$'\n'"$bad"
bad=$(grep -rnE --include='*.tf' 'trivy:ignore:' terraform | grep -vE 'trivy:ignore:AVD-[A-Z]+-[0-9]+ .{15,}' || true)
[[ -z $bad ]] || die "trivy ignores without a reason (write #trivy:ignore:AVD-…  <why>):"$'\n'"$bad"
n_ck_skips=$(grep -rhoE --include='*.tf' 'checkov:skip=' terraform | wc -l)
n_tv_ignores=$(grep -rhoE --include='*.tf' 'trivy:ignore:' terraform | wc -l)

scripts/deps/tfscan.sh install
eval "$(scripts/deps/tfscan.sh env)"

log "checkov over terraform/"
# BC_SKIP_MAPPING: no call to the Prisma Cloud API for guideline links. Exit code 1 = findings,
# judged from the report below.
BC_SKIP_MAPPING=TRUE "$CHECKOV" -d terraform --framework terraform --compact --skip-download \
  -o json >"$WORK/checkov.json" 2>"$WORK/checkov.log" || true
read -r ck_passed ck_failed ck_skipped ck_errors < <(python3 - "$WORK/checkov.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
s = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for r in reports:
    for k in s:
        s[k] += r.get("summary", {}).get(k, 0)
    for c in r.get("results", {}).get("failed_checks", []):
        print(f"  {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})", file=sys.stderr)
print(s["passed"], s["failed"], s["skipped"], s["parsing_errors"])
PY
) || die "could not read the checkov report $WORK/checkov.json; see $WORK/checkov.log"
((ck_failed == 0 && ck_errors == 0)) ||
  die "checkov: $ck_failed failed checks, $ck_errors parsing errors (listed above): fix them, or add a checkov:skip=<id>:<reason> comment inside the resource"

log "trivy config over terraform/"
TRIVY_CACHE=$MCPGW_CACHE_DIR/trivy
# --skip-check-update: the checks built into this pinned trivy, nothing fetched at run time.
"$TRIVY" config --quiet --skip-check-update --cache-dir "$TRIVY_CACHE" --misconfig-scanners terraform \
  --ignorefile "" -f json -o "$WORK/trivy.json" terraform 2>"$WORK/trivy.log" ||
  die "trivy failed; see $WORK/trivy.log"
tv_failed=$(python3 - "$WORK/trivy.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
n = 0
for r in data.get("Results") or []:
    for m in r.get("Misconfigurations") or []:
        if m.get("Status") == "FAIL":
            n += 1
            print(f"  {m.get('AVDID') or m['ID']} {m['Title']}: {r['Target']} ({m.get('CauseMetadata', {}).get('StartLine', '?')})", file=sys.stderr)
print(n)
PY
) || die "could not read the trivy report $WORK/trivy.json"
((tv_failed == 0)) ||
  die "trivy: $tv_failed findings (listed above): fix them, or add '#trivy:ignore:AVD-…  <reason>' above the resource"

log "terraform checks passed in $((SECONDS - started)) s:"
log "  fmt clean; validated $n_modules modules, $n_envs environments, $n_other other roots; $n_tests mocked test runs passed; $n_varfiles pipeline variable files valid"
log "  checkov: $ck_passed passed, 0 failed, $ck_skipped skipped by $n_ck_skips explained skip comments"
log "  trivy: 0 findings; $n_tv_ignores explained ignore comments"
