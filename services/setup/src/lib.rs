//! `mcpgw-setup`: brings a deployed mcpgw to a working state, and keeps it there.
//!
//! Each run compares what the realm spec and this binary's schema say with what Keycloak,
//! Secrets Manager, DocumentDB and Aurora hold, and changes only what differs (`--dry-run`
//! prints the plan instead). Every input is checked, and every credential tried, before the
//! first write, so bad input changes nothing; each write is idempotent, so a run that stopped
//! half-way is finished by running again. docs/deployment.md shows a run.
//!
//! The inputs, the spec, the secrets, Keycloak and the step runner are in
//! `mcpgw-setup-keycloak` (re-exported here under the same names), which the tests' Keycloak
//! fixture uses without this crate; this crate adds the steps that need the registry and the
//! auth-server, or reach past Keycloak: endpoints, databases, documentdb, migrations, scopes,
//! gateway-key and validate ([`steps`]).

pub mod steps;

pub use mcpgw_setup_keycloak::{
    Context, Options, Outcome, Report, Step, StepReport, StepStatus, error, inputs, keycloak,
    output, secrets, spec, wait,
};

use std::sync::Arc;

use secrecy::SecretString;

/// What the databases step connects, for the steps after it.
#[derive(Default)]
pub struct Databases {
    pub mongo: Option<mongodb::Database>,
    /// The DocumentDB URL the connection was made with (the scopes step opens the registry's
    /// store on it).
    pub mongo_url: Option<SecretString>,
    pub postgres: Option<sqlx::PgPool>,
    /// The registry's own store on that DocumentDB, opened by the first step that needs it.
    pub registry_store: Option<Arc<registry::store::mongo::MongoStore>>,
}

/// Runs the selected steps in order and prints each; stops at the first failure.
pub async fn run(options: Options) -> Report {
    mcpgw_setup_keycloak::run(options, &mut Databases::default()).await
}
