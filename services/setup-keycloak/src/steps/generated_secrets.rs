//! Step 5: the secrets this program generates — one per confidential client, and (dev only)
//! one per dev user's password — created where missing, never replaced. They are stored
//! before Keycloak is told, so a run that stops in between finishes on the next run with the
//! same values.

use mcpgw_core::plan::Change;

use crate::error::Result;
use crate::inputs::Environment;
use crate::secrets::generate;
use crate::spec::Spec;
use crate::{Context, Outcome};

pub async fn run(ctx: &mut Context) -> Result<Outcome> {
    let prefix = ctx.inputs.secret_prefix.clone();
    let mut wanted: Vec<(String, String)> = ctx
        .spec
        .clients
        .iter()
        .map(|c| {
            (
                Spec::client_secret_id(&prefix, &c.client_id),
                format!("mcpgw: secret of the Keycloak client {}", c.client_id),
            )
        })
        .collect();
    let mut changes = Vec::new();
    for u in &ctx.spec.dev_users {
        let id = Spec::user_password_id(&prefix, &u.username);
        if ctx.inputs.environment == Environment::Dev {
            wanted.push((
                id,
                format!("mcpgw: password of the dev user {}", u.username),
            ));
        } else {
            changes.push(Change::skipped(
                format!("secret {id}"),
                "dev users are created only when environment = dev",
            ));
        }
    }
    for (id, description) in wanted {
        if ctx.secrets.get(&id).await?.is_some() {
            changes.push(Change::unchanged(format!("secret {id}")));
            continue;
        }
        if !ctx.dry_run {
            ctx.secrets.put(&id, &generate(), &description).await?;
        }
        changes.push(Change::create(format!("secret {id}")));
    }
    Ok(Outcome::changes(
        changes,
        format!("in {}", ctx.secrets.describe()),
    ))
}
