//! Step: the gateway's API key for the registry (permission `gateway:sync` only, as the
//! registry's `gateway-key` command makes), kept in the secret
//! `<prefix>/registry/gateway-api-key` that gateways read (`registry.api_key.secret_id`).
//!
//! Unchanged while the stored key still authenticates (present, not revoked, not expired).
//! Otherwise a new key is minted: the secret is written first, then the key's record, so a run
//! that stops in between leaves a secret that does not authenticate yet, which the next run
//! replaces; a gateway never holds a key the registry will not know.

use mcpgw_core::auth::Permission;
use mcpgw_core::plan::Change;
use mcpgw_core::time::Timestamp;
use registry::keys;
use registry::store::{AuditRecord, RegistryStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::scopes::{ACTOR, registry_store, store_error};
use crate::error::Result;
use crate::{Context, Databases, Outcome};

pub fn secret_id(prefix: &str) -> String {
    format!("{prefix}/registry/gateway-api-key")
}

pub async fn run(ctx: &Context, dbs: &mut Databases) -> Result<Outcome> {
    let id = secret_id(&ctx.inputs.secret_prefix);
    let object = format!("gateway API key in secret {id}");
    let store = registry_store(ctx, dbs).await?;
    let why_new = match ctx.secrets.get(&id).await? {
        None => None,
        Some(plain) => match keys::parse(plain.expose_secret()) {
            None => Some("the stored value is not an mcpgw API key"),
            Some((key_id, secret)) => match store
                .get_api_key(key_id)
                .await
                .map_err(|e| store_error("reading the gateway's API key", e))?
            {
                Some(record) if keys::verify(&record, secret, Timestamp::now()) => {
                    return Ok(Outcome::changes(
                        vec![Change::unchanged(object)],
                        format!("key {key_id}"),
                    ));
                }
                Some(_) => Some("the stored key is revoked or expired"),
                None => Some("the registry does not know the stored key"),
            },
        },
    };
    let change = match why_new {
        None => Change::create(object),
        Some(why) => Change::update(object, why),
    };
    if ctx.dry_run {
        return Ok(Outcome::changes(vec![change], ""));
    }
    let minted = keys::mint(
        None,
        "gateway (mcpgw-setup)",
        vec![Permission::GatewaySync],
        ACTOR,
        None,
    );
    ctx.secrets
        .put(
            &id,
            &SecretString::from(minted.plain.clone()),
            "mcpgw: the gateways' API key for the registry (gateway:sync)",
        )
        .await?;
    let audit = AuditRecord::new(
        ACTOR,
        mcpgw_core::auth::PrincipalKind::Service,
        "api_key.create",
        "api_key",
        minted.record.id.clone(),
        json!({"name": minted.record.name, "permissions": ["gateway:sync"], "secret": id}),
    );
    store
        .insert_api_key(&minted.record, &audit)
        .await
        .map_err(|e| store_error("storing the gateway's API key", e))?;
    Ok(Outcome::changes(
        vec![change],
        format!("key {}", minted.record.id),
    ))
}
