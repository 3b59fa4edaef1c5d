# mcpgw: one front door for MCP servers. `make help` lists the targets.
SHELL := /usr/bin/env bash
CARGO ?= cargo

.PHONY: help run run-registry run-auth setup test lint fmt build check-config openapi bench bench-gateway

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: ## Run registry, auth-server and gateway on embedded defaults (SQLite, demo MCP server at /demo/mcp)
	scripts/run-local.sh

run-registry: ## Run only the registry on embedded defaults; prints an admin key at first start
	$(CARGO) run -p registry -- --config services/registry/config/local.toml

run-auth: ## Run the auth-server on embedded defaults (SQLite, local admin; password printed once)
	$(CARGO) run -p auth-server -- --config services/auth-server/config/local.toml

setup: ## Post-deploy setup: make setup ARGS="--terraform-outputs outputs.json --dry-run" (docs/deployment.md)
	$(CARGO) run -q -p mcpgw-setup -- $(ARGS)

test: ## Run every check and test (installs and starts MongoDB and the Secrets Manager emulator)
	scripts/test.sh

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

bench-gateway: ## Benchmark tools/call direct vs through the gateway; writes docs/performance.md
	scripts/bench-gateway.sh
