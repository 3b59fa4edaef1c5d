//! mcpgw registry: the catalog of MCP servers with owners, risk, lifecycle and approval, an
//! audit trail, and the official MCP Registry read API.
//!
//! The binary in `main.rs` is thin: it parses the command line, loads config and calls
//! [`app::start`]. Tests call the same function on `127.0.0.1:0`.

pub mod agents;
pub mod api;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod console;
pub mod demo;
pub mod discovery;
pub mod embeddings;
pub mod error;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod mcp;
pub mod mcp_client;
pub mod search;
pub mod service;
pub mod store;
mod versioned;
