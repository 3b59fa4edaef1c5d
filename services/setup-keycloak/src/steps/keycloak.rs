//! Step 3: reach Keycloak and sign in to its admin API, before anything is written anywhere
//! (a wrong password stops the run with nothing changed).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::error::{Result, SetupError};
use crate::inputs::AdminCredentials;
use crate::keycloak::{Admin, join};
use crate::wait::{Attempt, until};
use crate::{Context, Outcome};

/// Waits for Keycloak's master realm to answer, then signs in to the admin API.
pub async fn run(ctx: &mut Context) -> Result<Outcome> {
    let base = ctx
        .inputs
        .keycloak_url
        .clone()
        .ok_or_else(|| SetupError::internal("keycloak_url was checked by the inputs step"))?;
    let http = ctx.http.clone();
    let probe = join(&base, "realms/master");
    until(
        &ctx.out,
        &format!("Keycloak at {base}"),
        ctx.inputs.wait_keycloak,
        Duration::from_secs(2),
        || {
            let (http, probe) = (http.clone(), probe.clone());
            async move {
                match http.get(probe.clone()).send().await {
                    Ok(r) if r.status().is_success() => Attempt::Ready(()),
                    Ok(r) => Attempt::NotYet(format!("{probe} answers {}", r.status())),
                    Err(e) => Attempt::NotYet(crate::error::error_chain(&e)),
                }
            }
        },
    )
    .await
    .map_err(|e| {
        e.with_hint("check keycloak_url and that Keycloak's service is running; raise --wait-keycloak if it is still starting")
    })?;
    let (username, password) = match ctx.inputs.keycloak_admin.clone() {
        Some(AdminCredentials::Given { username, password }) => (username, password),
        Some(AdminCredentials::Secret(id)) => admin_from_secret(ctx, &id).await?,
        None => {
            return Err(SetupError::internal(
                "admin credentials were checked by the inputs step",
            ));
        }
    };
    let admin = Admin::sign_in(ctx.http.clone(), &base, &username, password).await?;
    let version = admin.version().await?;
    ctx.keycloak = Some(admin);
    Ok(Outcome::note(format!(
        "Keycloak {version} at {}; signed in as {username}",
        base.as_str().trim_end_matches('/')
    )))
}

/// `{"username": …, "password": …}`, or the bare password of `admin`.
async fn admin_from_secret(ctx: &Context, id: &str) -> Result<(String, SecretString)> {
    let value = ctx.secrets.get(id).await?.ok_or_else(|| {
        SetupError::input(format!(
            "the Keycloak admin secret {id:?} does not exist in {}",
            ctx.secrets.describe()
        ))
    })?;
    match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(Value::Object(m)) => {
            let password = m.get("password").and_then(Value::as_str).ok_or_else(|| {
                SetupError::input(format!(
                    "the Keycloak admin secret {id:?} has no \"password\""
                ))
            })?;
            let username = m.get("username").and_then(Value::as_str).unwrap_or("admin");
            Ok((username.to_owned(), SecretString::from(password.to_owned())))
        }
        _ => Ok(("admin".to_owned(), value)),
    }
}
