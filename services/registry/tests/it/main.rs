//! Integration tests of the registry: the real service on real sockets, on real SQLite and
//! real MongoDB (started by `scripts/test.sh`; see `helpers::mongo_url`).
//!
//! Behaviour tests are written once and run on both backends through `both_backends!`.

mod helpers;

mod agents;
mod api_keys;
mod bad_input;
mod catalog;
mod console;
mod durability;
mod escalation;
mod gateway;
mod gateway_health;
mod gateway_tools;
mod health;
mod idp;
mod integrity;
mod list_changed;
mod listener;
mod policy;
mod registry_mcp;
mod search;
mod secrets;
mod servers;
