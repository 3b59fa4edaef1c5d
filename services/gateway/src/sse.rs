//! Server-sent events: moved to `mcpgw_core::sse` (the registry's health probe reads upstream
//! streams too); re-exported so `crate::sse::…` paths keep working.

pub use mcpgw_core::sse::*;
