//! Integration tests of the gateway: a real registry, real MCP servers and clients, on real
//! sockets.

mod aggregate;
mod audit_exits;
mod audit_refusals;
mod behaviour;
mod catalog;
mod helpers;
mod idp;
mod integrity;
mod oauth_sign_in;
mod origin_binding;
mod peers;
mod proxy;
mod registry_mcp;
mod resource_audience;
mod stdio_health;
mod stdio_sandbox;
mod stdio_tools;
mod upstream;
