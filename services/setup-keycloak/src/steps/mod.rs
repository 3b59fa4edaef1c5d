//! This crate's steps, one module each; [`run`] dispatches, and hands the others to
//! [`MoreSteps`].

pub mod generated_secrets;
pub mod inputs;
pub mod keycloak;

use crate::error::Result;
use crate::{Context, MoreSteps, Outcome, Step};

pub async fn run(step: Step, ctx: &mut Context, more: &mut dyn MoreSteps) -> Result<Outcome> {
    match step {
        // Runs first, in `crate::run`, since it builds the context.
        Step::Inputs => Ok(Outcome::note("")),
        Step::Keycloak => keycloak::run(ctx).await,
        Step::Secrets => generated_secrets::run(ctx).await,
        Step::Realm => {
            let changes = crate::keycloak::realm::ensure(ctx).await?;
            Ok(Outcome::changes(
                changes,
                format!("realm {}", ctx.spec.realm.name),
            ))
        }
        Step::Endpoints
        | Step::Databases
        | Step::Documentdb
        | Step::Migrations
        | Step::Scopes
        | Step::GatewayKey
        | Step::Validate => more.run(step, ctx).await,
    }
}
