# mcpgw: one front door for MCP servers. `make help` lists the targets.
SHELL := /usr/bin/env bash
CARGO ?= cargo
COMPOSE ?= docker compose
TF ?= terraform
MCPGW_CACHE_DIR ?= $(HOME)/.cache/mcpgw
# A local provider mirror (terraform init -plugin-dir) when this machine has one; empty = the
# Terraform Registry.
TF_PLUGIN_DIR ?= $(wildcard /opt/tf-plugins)
# Passed through to scripts/build-images.sh: IMAGE= (one image), AWS_REGION=, REGISTRY=, FORCE=1.
export IMAGE AWS_REGION REGISTRY FORCE

.PHONY: help run run-registry run-auth setup test check test-console lint fmt build check-config openapi bench bench-gateway \
	images build-push setup-task env up down compose-check tf-fmt tf-validate tf-scan

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Run registry, auth-server and gateway on embedded defaults (SQLite, demo MCP server at /demo/mcp)
	scripts/run-local.sh

run-registry: ## Run only the registry on embedded defaults; prints an admin key at first start
	$(CARGO) run -p registry -- --config services/registry/config/local.toml

run-auth: ## Run the auth-server on embedded defaults (SQLite, local admin; password printed once)
	$(CARGO) run -p auth-server -- --config services/auth-server/config/local.toml

setup: ## Post-deploy setup on `terraform output -json` of TF_DIR=terraform/environments/<mode> [ARGS=--dry-run] (docs/deployment.md)
	@[[ -n "$(TF_DIR)" ]] || { echo "make setup: give TF_DIR=terraform/environments/<mode> (where terraform apply ran), e.g. make setup TF_DIR=terraform/environments/custom-domain ARGS=--dry-run" >&2; exit 2; }
	terraform -chdir=$(TF_DIR) output -json | $(CARGO) run -q -p mcpgw-setup -- --terraform-outputs - $(ARGS)

test: ## Run every check and test (installs and starts what they need: databases, Keycloak, Chromium, ...)
	scripts/test.sh

check: ## The fast checks, no databases or tests: cargo fmt --check, clippy, cargo-deny (deny.toml), static doc checks
	scripts/check.sh

test-console: ## The web console's browser tests alone (headless Chromium; screenshots in ~/.cache/mcpgw/artifacts/console)
	scripts/test-console.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Build every binary in release mode
	$(CARGO) build --release --workspace --bins

check-config: ## Validate the local configuration
	$(CARGO) run -q -p registry -- --config services/registry/config/local.toml --check-config

openapi: ## Print the registry's OpenAPI document
	$(CARGO) run -q -p registry -- openapi

bench: ## Benchmark the registry on SQLite and MongoDB; writes docs/performance.md
	scripts/bench-registry.sh

bench-gateway: ## Benchmark tools/call direct, through nginx, HAProxy, a bare forwarder and the gateway (CPU and instructions per call); writes docs/performance.md
	scripts/bench-gateway.sh

images: ## docker build every image (IMAGE=registry|auth-server|gateway|setup for one), tagged <version>-<git short sha>
	scripts/build-images.sh build

# The repositories are Terraform's: their host and name prefix come from the environment's
# outputs (ecr_registry, ecr_repository_prefix), so the names cannot drift apart.
build-push: ## Build and push to the environment's ECR, immutable tag <version>-<git sha>: TF_DIR=terraform/environments/<mode> AWS_REGION=… [IMAGE=…] [FORCE=1]
	@test -n "$(TF_DIR)" || { echo "TF_DIR=terraform/environments/<mode> is needed: the repository names are that environment's outputs" >&2; exit 1; }
	prefix=$$($(TF) -chdir=$(TF_DIR) output -raw ecr_repository_prefix) && \
	  registry=$${REGISTRY:-$$($(TF) -chdir=$(TF_DIR) output -raw ecr_registry)} && \
	  REGISTRY="$$registry" REPO_PREFIX="$$prefix" scripts/build-images.sh push

setup-task: ## Run mcpgw-setup as its ECS task, wait, check its exit code: TF_DIR=terraform/environments/<mode> [ARGS=--dry-run]
	@test -n "$(TF_DIR)" || { echo "TF_DIR=terraform/environments/<mode> is needed" >&2; exit 1; }
	scripts/run-setup-task.sh $(TF_DIR) $(ARGS)

env: ## Write .env for docker compose with generated secrets (never overwrites an existing .env)
	deploy/compose/new-env.sh

up: compose-check ## Start the docker compose stack (builds the images; see docker-compose.yml for the URLs)
	@test -f .env || { echo "no .env: run 'make env' (generated secrets) or copy .env.example" >&2; exit 1; }
	$(COMPOSE) up -d --build
	$(COMPOSE) ps

down: ## Stop the docker compose stack (keeps the volumes; add ARGS=-v to delete them)
	$(COMPOSE) down $(ARGS)

compose-check: ## Validate docker-compose.yml: Compose schema, project rules, each binary's --check-config
	scripts/check-compose.sh

tf-fmt: ## terraform fmt every .tf file under terraform/
	$(TF) fmt -recursive terraform

tf-validate: ## terraform init -backend=false and validate in every Terraform directory (.terraform in ~/.cache/mcpgw/tf-data)
	@set -euo pipefail; \
	for d in $$(find terraform -name '*.tf' -not -path '*/.terraform/*' -printf '%h\n' | sort -u); do \
	  echo "==> terraform validate $$d"; \
	  export TF_DATA_DIR="$(MCPGW_CACHE_DIR)/tf-data/$$d"; \
	  $(TF) -chdir="$$d" init -backend=false -input=false -no-color $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR)) >/dev/null \
	    || { echo "terraform init failed in $$d (run it there to see why)" >&2; exit 1; }; \
	  $(TF) -chdir="$$d" validate -no-color; \
	done

tf-scan: ## Static security checks of the Terraform code (scripts/check-terraform.sh)
	scripts/check-terraform.sh
