//! Step 9: the registry's scope documents (policy) from the spec, written through the
//! registry's own store: created and changed documents go in one `put_scopes`, which bumps the
//! policy version and writes the audit record in the same transaction. Running registries follow
//! the stored version, so they pick the change up without a restart. Documents the spec does not
//! name are left alone (they are managed through the registry's API).

use std::sync::Arc;

use mcpgw_core::auth::PrincipalKind;
use mcpgw_core::plan::Change;
use mcpgw_core::policy::ScopeDocument;
use registry::config::{SqliteSync, StoreConfig};
use registry::store::mongo::MongoStore;
use registry::store::{AuditRecord, RegistryStore, StoreError};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::error::{Result, SetupError};
use crate::{Context, Databases, Outcome};

/// Who the audit log names as the author of the seeded documents.
pub const ACTOR: &str = "setup:mcpgw-setup";

/// The registry's own store on the DocumentDB the databases step connected to, opened once per
/// run. `connect`, not `open`: opening creates indexes, and a dry run writes nothing.
pub(crate) async fn registry_store(ctx: &Context, dbs: &mut Databases) -> Result<Arc<MongoStore>> {
    if let Some(store) = &dbs.registry_store {
        return Ok(store.clone());
    }
    let url = dbs
        .mongo_url
        .as_ref()
        .ok_or_else(|| SetupError::internal("the databases step connects DocumentDB first"))?;
    let settings = StoreConfig {
        url: String::new(),
        pool_size: 1,
        sqlite_synchronous: SqliteSync::Full,
        backend: registry::config::RegistryStoreConfig {
            mongo_database: ctx.inputs.documentdb_database.clone(),
            mongo_server_selection_timeout_ms: 15_000,
            catalog_cache_ms: 0,
        },
    };
    let store = Arc::new(
        MongoStore::connect(url.expose_secret(), &settings)
            .await
            .map_err(|e| store_error("opening the registry store", e))?,
    );
    dbs.registry_store = Some(store.clone());
    Ok(store)
}

pub async fn run(ctx: &Context, dbs: &mut Databases) -> Result<Outcome> {
    let store = registry_store(ctx, dbs).await?;
    let stored = store
        .policy()
        .await
        .map_err(|e| store_error("reading the registry's scope documents", e))?;

    let mut changes = Vec::new();
    let mut writes: Vec<ScopeDocument> = Vec::new();
    for want in ctx.spec.registry_scope_documents() {
        let object = format!("scope document {}", want.name());
        match stored.documents.iter().find(|d| d.name() == want.name()) {
            None => {
                changes.push(Change::create(object));
                writes.push(want);
            }
            Some(have) => match differences(have, &want) {
                None => changes.push(Change::unchanged(object)),
                Some(detail) => {
                    changes.push(Change::update(object, detail));
                    writes.push(want);
                }
            },
        }
    }
    if writes.is_empty() || ctx.dry_run {
        return Ok(Outcome::changes(
            changes,
            format!("policy version {}", stored.version),
        ));
    }
    let names: Vec<&str> = writes.iter().map(ScopeDocument::name).collect();
    let audit = AuditRecord::new(
        ACTOR,
        PrincipalKind::Service,
        "scope.put",
        "scope",
        names.join(","),
        json!({"documents": names, "source": "realm spec"}),
    );
    let version = store
        .put_scopes(&writes, false, &audit)
        .await
        .map_err(|e| store_error("writing the registry's scope documents", e))?;
    Ok(Outcome::changes(
        changes,
        format!("policy version {} -> {version}", stored.version),
    ))
}

/// The top-level fields that differ (`server_access, group_mappings differ`), if any.
fn differences(have: &ScopeDocument, want: &ScopeDocument) -> Option<String> {
    let fields = |d: &ScopeDocument| serde_json::to_value(d).unwrap_or(Value::Null);
    let (have, want) = (fields(have), fields(want));
    let differ: Vec<&str> = ["group_mappings", "server_access", "ui_permissions"]
        .into_iter()
        .filter(|f| have.get(f) != want.get(f))
        .collect();
    (!differ.is_empty()).then(|| format!("{} differ", differ.join(", ")))
}

pub(crate) fn store_error(what: &str, e: StoreError) -> SetupError {
    match e {
        StoreError::Unavailable(m) => SetupError::unreachable(format!("{what}: {m}")).with_hint(
            "check that DocumentDB is reachable from here and run again; nothing was half-written",
        ),
        other => SetupError::apply(format!("{what}: {other}")),
    }
}
