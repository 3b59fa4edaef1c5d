//! Shared library of mcpgw.
//!
//! Everything that more than one service needs lives here: configuration loading, telemetry,
//! the HTTP error envelope, the domain model of a registered MCP server, the permission model,
//! the egress policy for registered URLs and the encryption of upstream credentials.
//! Services depend on this crate; it depends on no service.

pub mod auth;
pub mod config;
pub mod domain;
pub mod egress;
pub mod error;
pub mod extract;
pub mod gateway_sync;
pub mod html;
pub mod input;
pub mod listener;
pub mod plan;
pub mod policy;
pub mod search;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod signing;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod sse;
pub mod telemetry;
pub mod time;
pub mod token;
pub mod upstream_auth;
pub mod validate;
pub mod web;
