#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml: the PR checks and the release
# pipeline, docs/deployment.md "CI/CD") with actionlint: workflow syntax, job and step
# references, expressions and their types, `needs` and reusable-workflow inputs, runner labels.
# actionlint is built once from the Go module proxy (scripts/deps/actionlint.sh). Zero findings
# allowed. Prints a summary.
#   bash scripts/check-workflows.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

mapfile -t workflows < <(find .github/workflows -name '*.yml' -o -name '*.yaml' | sort)
((${#workflows[@]} > 0)) || die "no workflows under .github/workflows"

scripts/deps/actionlint.sh install
eval "$(scripts/deps/actionlint.sh env)"
log "actionlint over ${#workflows[@]} workflows"
"$ACTIONLINT" -no-color "${workflows[@]}" >&2 ||
  die "actionlint found problems in the workflows (listed above)"
log "workflows lint clean: ${workflows[*]}"
