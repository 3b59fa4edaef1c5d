//! The domain model of the registry: registered MCP servers, their tools and their lifecycle.
//!
//! Three shapes of a server exist on purpose:
//! - [`server::ServerSpec`] is what a client sends: credentials in plain text, write-only;
//! - [`server::ServerRecord`] is what is stored: credentials sealed, never in plain text;
//! - [`server::ServerView`] is what a client reads: no credential, sealed or not, ever.

pub mod agent;
pub mod integrity;
pub mod lifecycle;
pub mod server;
pub mod tool;

pub use agent::{
    AgentCard, AgentHealth, AgentRecord, AgentSpec, AgentView, CardStatus, ValidAgentSpec,
};
pub use integrity::{IntegrityMode, ToolBaseline, ToolChange, ToolsStatus};
pub use lifecycle::{DeploymentStage, Lifecycle, LifecycleEvent};
pub use server::*;
pub use tool::{LeftOut, Tool, ToolAnnotations, ToolSpec};
