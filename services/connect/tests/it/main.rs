//! Integration tests of `mcpgw-connect`: the built binary against a real auth-server (the
//! embedded mode of `make run`: SQLite, local users), registry and gateway on loopback, an rmcp
//! server behind the gateway, the Python SDK's stdio client (`mcp.client.stdio`) in front, and
//! headless Chromium for the browser step. `scripts/deps/mcp-peers.sh` installs the SDK,
//! `scripts/deps/browser.sh` Chromium; `scripts/test.sh` exports where they are.

mod bridge;
mod config;
mod login;
mod stack;
// The gateway tests' rmcp server (read-only `echo`, writing `write_note`, …): the same server,
// not a copy.
#[path = "../../../gateway/tests/it/upstream.rs"]
mod upstream;
