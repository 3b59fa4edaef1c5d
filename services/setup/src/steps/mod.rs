//! One module per step; [`run`] dispatches.

pub mod connect;
pub mod documentdb;
pub mod endpoints;
pub mod gateway_key;
pub mod generated_secrets;
pub mod inputs;
pub mod migrations;
pub mod scopes;
pub mod validate;

use crate::error::Result;
use crate::{Context, Outcome, Step};

pub async fn run(step: Step, ctx: &mut Context) -> Result<Outcome> {
    match step {
        // Runs first, in `crate::run`, since it builds the context.
        Step::Inputs => Ok(Outcome::note("")),
        Step::Endpoints => endpoints::run(ctx).await,
        Step::Keycloak => connect::keycloak(ctx).await,
        Step::Databases => connect::databases(ctx).await,
        Step::Secrets => generated_secrets::run(ctx).await,
        Step::Realm => {
            let changes = crate::keycloak::realm::ensure(ctx).await?;
            Ok(Outcome::changes(
                changes,
                format!("realm {}", ctx.spec.realm.name),
            ))
        }
        Step::Documentdb => documentdb::run(ctx).await,
        Step::Migrations => migrations::run(ctx).await,
        Step::Scopes => scopes::run(ctx).await,
        Step::GatewayKey => gateway_key::run(ctx).await,
        Step::Validate => validate::run(ctx).await,
    }
}
