//! The steps that need the registry or the auth-server, or reach past Keycloak, one module
//! each; [`Databases`] runs them for `mcpgw-setup-keycloak`'s runner, which runs the others.

pub mod connect;
pub mod documentdb;
pub mod endpoints;
pub mod gateway_key;
pub mod migrations;
pub mod scopes;
pub mod validate;

use async_trait::async_trait;
use mcpgw_setup_keycloak::MoreSteps;

use crate::error::{Result, SetupError};
use crate::{Context, Databases, Outcome, Step};

#[async_trait]
impl MoreSteps for Databases {
    async fn run(&mut self, step: Step, ctx: &mut Context) -> Result<Outcome> {
        match step {
            Step::Endpoints => endpoints::run(ctx).await,
            Step::Databases => connect::databases(ctx, self).await,
            Step::Documentdb => documentdb::run(ctx, self).await,
            Step::Migrations => migrations::run(ctx, self).await,
            Step::Scopes => scopes::run(ctx, self).await,
            Step::GatewayKey => gateway_key::run(ctx, self).await,
            Step::Validate => validate::run(ctx).await,
            Step::Inputs | Step::Keycloak | Step::Secrets | Step::Realm => Err(
                SetupError::internal(format!("the runner runs the {} step itself", step.name())),
            ),
        }
    }
}
