//! The registry's operations, independent of HTTP: every entry point (REST today; the UI and
//! the registry's own MCP tools later) calls these, so the rules are enforced once.
//!
//! Each mutation: checks the caller's permission, validates the input (including the egress
//! policy for URLs), builds the new record, and hands record plus audit entry to the store in
//! one call, conditional on the revision it read.
//!
//! Rules every server operation keeps:
//! - a server the caller may not read answers exactly as a missing one (`require_read` runs
//!   before the record is loaded, so nothing about it shows in a refusal);
//! - a change of where traffic, credentials or identities go (`review_reasons`) sends a server
//!   past `draft` back to `submitted`: not routable until reviewed again;
//! - the registry's own record (`SYSTEM_OWNER`) changes only by the registry or a caller with
//!   `servers:system`;
//! - commands (`servers:stdio`) and identity assertion (`servers:assert_caller`) need their own
//!   permission to be set, and to be approved into routing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcpgw_core::auth::{Permission, Principal, Role};
use mcpgw_core::domain::integrity;
use mcpgw_core::domain::tool::{self, MAX_TOOLS, validate_tools};
use mcpgw_core::domain::{
    ApplyError, DeploymentStage, LeftOut, Lifecycle, ServerPath, ServerRecord, ServerSpec, Tool,
    ToolSpec, ValidSpec, review_reasons,
};
use mcpgw_core::egress::EgressPolicy;
use mcpgw_core::gateway_sync::McpAuditEvent;
use mcpgw_core::policy::{CompiledPolicy, PolicySnapshot, ScopeDocument};
use mcpgw_core::secrets::Keyring;
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::{self, FieldError};
use serde_json::{Value, json};

use crate::error::{RegistryError, Result};
use crate::keys;
use crate::store::{
    ApiKeyRecord, AuditFilter, AuditRecord, RegistryStore, ServerFilter, StoreError,
};
use crate::versioned::{Versioned, check_revision, store_error, transition_permission};

/// The `created_by` of the registry's own record: the system principal `mcp::register` runs
/// as. No caller but the registry has a `system:` subject (keys are `api_key:…`, tokens
/// `jwt:…`), so nobody else can make a record that counts as system-owned.
pub const SYSTEM_OWNER: &str = "system:mcpgw-registry";

/// Where a server's tool definitions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSource {
    /// `PUT /api/v1/servers/{path}/tools`.
    Api,
    /// The registry's own `tools/list` of the server.
    Discovery,
    /// A gateway's `tools/list` of a stdio server it runs (`POST /api/v1/gateway/tools`).
    Gateway,
}

/// Facts about the request a mutation came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
}

pub struct Registry {
    pub store: Arc<dyn RegistryStore>,
    pub keyring: Arc<Keyring>,
    pub egress: EgressPolicy,
    pub stage: DeploymentStage,
    pub policy_cache: PolicyCache,
    pub key_cache: keys::KeyCache,
    /// Lists and filters are answered from memory; `None` reads the store every time.
    pub catalog: Option<crate::catalog::CatalogCache>,
    /// The routing snapshot gateways long-poll; told of every server and policy write.
    pub gateway: crate::gateway::SnapshotFeed,
    /// The ranked-search index; told of every server write (see `search.rs`).
    pub search_index: crate::search::CatalogSearch,
    /// Server changes and health changes, for `GET /api/v1/events`.
    pub events: crate::health::EventBus,
    /// The path of the registry's own record (`mcp.path`): reserved,
    /// so nobody can take it before the registry registers itself (the registry leaves a record
    /// made by someone else at that path alone, and gateways would route it as the registry).
    pub system_path: Option<ServerPath>,
}

/// The compiled policy, shared by every request of this process.
///
/// A change made through this process invalidates it at once; a change made by another replica
/// is seen when the cache is older than `max_age` (the stored version is then compared, and the
/// documents are only re-read and recompiled when it moved).
pub struct PolicyCache {
    max_age: std::time::Duration,
    state: std::sync::RwLock<Option<(std::time::Instant, Arc<CompiledPolicy>)>>,
    reload: tokio::sync::Mutex<()>,
}

impl PolicyCache {
    pub fn new(max_age: std::time::Duration) -> Self {
        Self {
            max_age,
            state: std::sync::RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<CompiledPolicy>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.max_age)
            .map(|(_, p)| p.clone())
    }

    pub fn invalidate(&self) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub async fn current(&self, store: &dyn RegistryStore) -> Result<Arc<CompiledPolicy>> {
        if let Some(p) = self.fresh() {
            return Ok(p);
        }
        let _one_reload_at_a_time = self.reload.lock().await;
        if let Some(p) = self.fresh() {
            return Ok(p);
        }
        let snapshot = store.policy().await?;
        let compiled = Arc::new(snapshot.compile());
        *self.state.write().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), compiled.clone()));
        Ok(compiled)
    }
}

/// A page of results and the cursor of the next page, if any.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items read (one more than asked, to know if more follow):
    /// the first `limit`, and the cursor (`key` of the last) when there were more.
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> String,
    ) -> Self {
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next }
    }
}

/// What a mutation changed, for its audit record.
pub(crate) struct Change<'a> {
    pub(crate) action: &'a str,
    pub(crate) resource_type: &'a str,
    pub(crate) resource_id: &'a str,
    pub(crate) revision_before: Option<u64>,
    pub(crate) revision_after: Option<u64>,
    pub(crate) details: Value,
}

pub(crate) fn audit(caller: &Principal, ctx: &RequestContext, change: Change<'_>) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: Timestamp::now(),
        request_id: ctx.request_id.clone(),
        actor: caller.subject.clone(),
        actor_kind: caller.kind,
        action: change.action.to_owned(),
        resource_type: change.resource_type.to_owned(),
        resource_id: change.resource_id.to_owned(),
        revision_before: change.revision_before,
        revision_after: change.revision_after,
        details: change.details,
    }
}

fn apply_error(e: ApplyError) -> RegistryError {
    match e {
        ApplyError::Field(f) => RegistryError::Invalid(f),
        ApplyError::Secret(s) => RegistryError::Secret(s),
    }
}

/// `spec` (a record's writable fields) as JSON with `patch` merged in (RFC 7396): the body of a
/// PATCH, before it is parsed and validated as a full spec.
pub(crate) fn patched(spec: &impl serde::Serialize, patch: &Value) -> Result<Value> {
    let mut merged = serde_json::to_value(spec)
        .map_err(|e| StoreError::Internal(format!("serializing a spec: {e}")))?;
    merge_patch(&mut merged, patch);
    Ok(merged)
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(entries) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let map = target.as_object_mut().expect("made an object above");
            for (key, value) in entries {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Credential maps (`custom_headers`, `endpoint.env`) are write-only, so a patch cannot merge
/// into them: a patch names the complete new map, or `null` to remove them all.
fn write_only_maps(patch: &Value, merged: &mut Value) -> Result<()> {
    for pointer in ["/custom_headers", "/endpoint/env"] {
        let field = pointer.trim_start_matches('/').replace('/', ".");
        match patch.pointer(pointer) {
            Some(Value::Null) => {
                let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
                if let Some(obj) = merged.pointer_mut(parent).and_then(Value::as_object_mut) {
                    obj.insert(key[..].to_owned(), Value::Object(Default::default()));
                }
            }
            Some(Value::Object(map)) => {
                if let Some((name, _)) = map.iter().find(|(_, v)| v.is_null()) {
                    return Err(FieldError::new(
                        format!("{field}.{name}"),
                        format!("{field} is write-only and cannot be merged: send the complete set, or null to remove all"),
                    )
                    .into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Top-level spec fields that differ, for the audit trail (values are not recorded: they may
/// be large, and credentials are write-only anyway).
fn changed_fields(before: &ServerRecord, after: &ServerRecord) -> Vec<String> {
    let b = serde_json::to_value(before.to_spec()).unwrap_or_default();
    let a = serde_json::to_value(after.to_spec()).unwrap_or_default();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
        for key in b.keys().chain(a.keys()) {
            if b.get(key) != a.get(key) {
                changed.insert(key.clone());
            }
        }
    }
    if before.upstream_auth != after.upstream_auth {
        changed.insert("upstream_auth".to_owned());
    }
    if before.custom_headers != after.custom_headers {
        changed.insert("custom_headers".to_owned());
    }
    if before.endpoint != after.endpoint {
        changed.insert("endpoint".to_owned());
    }
    changed.into_iter().collect()
}

pub fn parse_path(text: &str) -> Result<ServerPath> {
    ServerPath::parse(text).map_err(|m| FieldError::new("path", m).into())
}

impl Registry {
    async fn check_egress(&self, spec: &ValidSpec) -> Result<()> {
        for (field, url) in spec.urls_to_check() {
            self.egress
                .check_url(&url)
                .await
                .map_err(|error| RegistryError::Egress { field, error })?;
        }
        Ok(())
    }

    async fn validate(&self, caller: &Principal, spec: &ServerSpec) -> Result<ValidSpec> {
        let valid = spec.validate()?;
        if valid.is_stdio() {
            caller.require(Permission::ServersStdio)?;
        }
        self.check_egress(&valid).await?;
        Ok(valid)
    }

    async fn load(&self, path: &ServerPath) -> Result<ServerRecord> {
        self.store
            .get_server(path)
            .await?
            .ok_or_else(|| RegistryError::ServerNotFound(path.to_string()))
    }

    fn store_error(e: StoreError, path: &ServerPath, expected: u64) -> RegistryError {
        store_error(e, expected, || {
            RegistryError::ServerNotFound(path.to_string())
        })
    }

    /// Writes `next` (revision already bumped) in place of a record read at `expected`.
    async fn commit(&self, next: &ServerRecord, expected: u64, entry: AuditRecord) -> Result<()> {
        let result = self
            .store
            .update_server(next, expected, &entry)
            .await
            .map_err(|e| Self::store_error(e, &next.path, expected));
        self.catalog_changed();
        if result.is_ok() {
            self.search_index.server_changed(next);
            self.events.publish(crate::health::ServerEvent::Changed {
                path: next.path.to_string(),
                revision: next.revision,
            });
        }
        result
    }

    /// Stores health results (health only: the revision stays), then lets lists and the
    /// gateway snapshot see them.
    pub async fn write_health(
        &self,
        updates: &[(ServerPath, mcpgw_core::domain::Health)],
    ) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let result = self.store.update_health(updates).await;
        self.catalog_changed();
        Ok(result?)
    }

    pub async fn create_server(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        spec: ServerSpec,
    ) -> Result<ServerRecord> {
        let Some(path) = spec.path.as_deref() else {
            return Err(FieldError::new("path", "is required").into());
        };
        caller.require_for(Permission::ServersCreate, path)?;
        if let Some(reserved) = &self.system_path
            && ServerPath::parse(path).as_ref() == Ok(reserved)
            && !caller.has(Permission::ServersSystem)
        {
            return Err(RegistryError::SystemOwned(reserved.to_string()));
        }
        let valid = self.validate(caller, &spec).await?;
        let record = ServerRecord::create(valid, &self.keyring, &caller.subject, true)
            .map_err(apply_error)?;
        Self::require_sensitive(caller, None, &record)?;
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.create",
                resource_type: "server",
                resource_id: record.path.as_str(),
                revision_before: None,
                revision_after: Some(record.revision),
                details: json!({"name": record.name, "transport": transport_name(&record)}),
            },
        );
        let result = self.store.insert_server(&record, &entry).await;
        self.catalog_changed();
        match result {
            Ok(()) => {
                self.search_index.server_changed(&record);
                self.events.publish(crate::health::ServerEvent::Changed {
                    path: record.path.to_string(),
                    revision: record.revision,
                });
                Ok(record)
            }
            Err(StoreError::Conflict(_)) => {
                Err(RegistryError::ServerExists(record.path.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_server(&self, caller: &Principal, path: &ServerPath) -> Result<ServerRecord> {
        Self::require_read(caller, path)?;
        self.load(path).await
    }

    /// A caller that may read some servers gets "not found" for the others, so it learns
    /// nothing about servers it may not see; one that may read none gets "forbidden".
    fn require_read(caller: &Principal, path: &ServerPath) -> Result<()> {
        match caller.limited_to(Permission::ServersRead) {
            None => Ok(()),
            Some(paths) if paths.contains(path.as_str()) => Ok(()),
            Some(paths) if paths.is_empty() => {
                Err(mcpgw_core::auth::MissingPermission(Permission::ServersRead).into())
            }
            Some(_) => Err(RegistryError::ServerNotFound(path.to_string())),
        }
    }

    /// The registry's own record (made by the registry at start, see `mcp::register`) carries
    /// the `gateway:delegate` key and has `gateway.assert_caller`: only the registry itself, or
    /// a caller holding `servers:system`, may change it.
    fn require_not_system_owned(caller: &Principal, record: &ServerRecord) -> Result<()> {
        if record.created_by == SYSTEM_OWNER && !caller.has(Permission::ServersSystem) {
            return Err(RegistryError::SystemOwned(record.path.to_string()));
        }
        Ok(())
    }

    /// What a write that turns `current` into `next` needs beyond its own permission: running
    /// a command (`servers:stdio`, also checked on every stdio spec by `validate`), and sending
    /// callers' identities upstream (`servers:assert_caller`, when it is set or its endpoint
    /// moves).
    fn require_sensitive(
        caller: &Principal,
        current: Option<&ServerRecord>,
        next: &ServerRecord,
    ) -> Result<()> {
        let asserts = next.gateway.assert_caller
            && current.is_none_or(|c| !c.gateway.assert_caller || c.endpoint != next.endpoint);
        if asserts {
            caller.require_for(Permission::ServersAssertCaller, next.path.as_str())?;
        }
        Ok(())
    }

    /// A step that makes a server routable approves what it runs and whom it tells: a stdio
    /// command needs an approver who may register commands (`servers:stdio`), a server that
    /// receives callers' identities one who may set that (`servers:assert_caller`).
    fn require_approver_of(caller: &Principal, record: &ServerRecord, to: Lifecycle) -> Result<()> {
        if !matches!(to, Lifecycle::ApprovedDev | Lifecycle::ApprovedProd) {
            return Ok(());
        }
        if matches!(record.endpoint, mcpgw_core::domain::Endpoint::Stdio { .. }) {
            caller.require(Permission::ServersStdio)?;
        }
        if record.gateway.assert_caller {
            caller.require_for(Permission::ServersAssertCaller, record.path.as_str())?;
        }
        Ok(())
    }

    /// Re-seals every server credential stored before credentials were bound to their
    /// endpoint, for the endpoint the record has now (once per record: later starts find
    /// nothing to do). Run at start, before anything is served; see
    /// `ServerRecord::rebind_legacy_secrets` for why the old binding is accepted only here.
    pub async fn rebind_legacy_secrets(&self) -> Result<usize> {
        let system = Principal::system("secret-binding");
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let page = self
                .store
                .list_servers(&ServerFilter::default(), after.as_deref(), 200)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.path.to_string());
            for current in page {
                let mut next = current.clone();
                let count = next.rebind_legacy_secrets(&self.keyring);
                if count == 0 {
                    continue;
                }
                next.revision += 1;
                next.updated_at = Timestamp::now();
                let entry = audit(
                    &system,
                    &RequestContext::default(),
                    Change {
                        action: "server.secrets_rebound",
                        resource_type: "server",
                        resource_id: current.path.as_str(),
                        revision_before: Some(current.revision),
                        revision_after: Some(next.revision),
                        details: json!({"values": count, "bound_to": next.endpoint.credential_binding()}),
                    },
                );
                // Another replica may have done it first: then its write stands.
                match self.commit(&next, current.revision, entry).await {
                    Ok(()) => total += count,
                    Err(RegistryError::StaleRevision { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if total > 0 {
            tracing::info!(
                values = total,
                "credentials sealed before endpoint binding were re-sealed for their endpoints"
            );
        }
        Ok(total)
    }

    pub async fn list_servers(
        &self,
        caller: &Principal,
        filter: &ServerFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Arc<ServerRecord>>> {
        let limited = caller.limited_to(Permission::ServersRead);
        if limited.as_ref().is_some_and(|p| p.is_empty()) {
            caller.require(Permission::ServersRead)?;
        }
        let scoped_filter;
        let filter = match limited {
            None => filter,
            Some(paths) => {
                scoped_filter = ServerFilter {
                    paths: Some(match &filter.paths {
                        Some(asked) => asked.intersection(&paths).cloned().collect(),
                        None => paths,
                    }),
                    ..filter.clone()
                };
                &scoped_filter
            }
        };
        let items = match &self.catalog {
            Some(cache) => {
                cache
                    .list(self.store.as_ref(), filter, after, limit + 1)
                    .await?
            }
            None => self
                .store
                .list_servers(filter, after, limit + 1)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect(),
        };
        Ok(Page::from_overfetch(items, limit, |r| r.path.to_string()))
    }

    pub async fn replace_server(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        spec: ServerSpec,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        caller.require_for(Permission::ServersUpdate, path.as_str())?;
        Self::require_read(caller, path)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        let read_at = check_revision(&current, expected)?;
        let valid = self.validate(caller, &spec).await?;
        let mut next = current.clone();
        next.apply_spec(valid, &self.keyring).map_err(apply_error)?;
        Self::require_sensitive(caller, Some(&current), &next)?;
        let mut details = json!({"changed": changed_fields(&current, &next)});
        let reasons = review_reasons(&current, &next);
        // Where traffic, credentials or identities go was approved as it was: a change of it
        // is a new submission, routable again only after a new review.
        let back_to_review = !reasons.is_empty()
            && matches!(
                current.lifecycle,
                Lifecycle::Submitted
                    | Lifecycle::SecurityReview
                    | Lifecycle::ApprovedDev
                    | Lifecycle::ApprovedProd
                    | Lifecycle::Deprecated
            );
        if back_to_review {
            let why = format!(
                "changed {}: the server needs a new review",
                reasons.join(", ")
            );
            next.transition(Lifecycle::Submitted, caller, &why);
            details["review"] = json!({
                "reasons": reasons,
                "lifecycle_before": current.lifecycle,
                "lifecycle_after": next.lifecycle,
                "endpoint_before": current.endpoint_summary(),
                "endpoint_after": next.endpoint_summary(),
            });
            tracing::warn!(server = %path, from = %current.lifecycle, reasons = ?reasons, "a change of where the server's traffic goes sent it back to review");
        } else {
            next.bump(caller);
        }
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.update",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: Some(next.revision),
                details,
            },
        );
        self.commit(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Applies a JSON merge patch (an object) to the writable fields (credentials are
    /// write-only: a patch that does not mention one keeps it).
    pub async fn patch_server(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        patch: Value,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        caller.require_for(Permission::ServersUpdate, path.as_str())?;
        Self::require_read(caller, path)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        check_revision(&current, expected)?;
        let mut merged = patched(&current.to_spec(), &patch)?;
        write_only_maps(&patch, &mut merged)?;
        let spec: ServerSpec = crate::api::extract::parse_json_value(merged)?;
        self.replace_server(caller, ctx, path, spec, Some(current.revision))
            .await
    }

    pub async fn delete_server(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        expected: Option<u64>,
    ) -> Result<()> {
        caller.require_for(Permission::ServersDelete, path.as_str())?;
        Self::require_read(caller, path)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        let read_at = check_revision(&current, expected)?;
        if current.lifecycle.blocks_delete() {
            return Err(RegistryError::DeleteBlocked(current.lifecycle));
        }
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.delete",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: None,
                details: json!({"name": current.name, "lifecycle": current.lifecycle}),
            },
        );
        let result = self
            .store
            .delete_server(path, read_at, &entry)
            .await
            .map_err(|e| Self::store_error(e, path, read_at));
        self.catalog_changed();
        if result.is_ok() {
            self.search_index.server_removed(path.as_str());
            self.events.publish(crate::health::ServerEvent::Deleted {
                path: path.to_string(),
            });
        }
        result
    }

    pub async fn set_enabled(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        enabled: bool,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        caller.require_for(Permission::ServersToggle, path.as_str())?;
        Self::require_read(caller, path)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        let read_at = check_revision(&current, expected)?;
        if current.enabled == enabled {
            return Ok(current);
        }
        let mut next = current.clone();
        next.enabled = enabled;
        next.bump(caller);
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.toggle",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: Some(next.revision),
                details: json!({"enabled": enabled}),
            },
        );
        self.commit(&next, read_at, entry).await?;
        Ok(next)
    }

    pub async fn transition(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        to: Lifecycle,
        reason: &str,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        let reason = validate::text("reason", reason, 1, mcpgw_core::domain::limits::REASON)?;
        // Before anything about the server is looked at: one the caller may not read answers
        // as a missing one (its state would otherwise show in the refusal).
        Self::require_read(caller, path)?;
        let current = self.load(path).await?;
        let from = current.lifecycle;
        caller.require_for(transition_permission(from, to)?, path.as_str())?;
        Self::require_not_system_owned(caller, &current)?;
        Self::require_approver_of(caller, &current, to)?;
        let read_at = check_revision(&current, expected)?;
        let mut next = current.clone();
        // The review approves the server as it stands, tools included: tools recorded before
        // the first approval become the baseline (later changes need `tools:approve`).
        let approves_tools = from == Lifecycle::SecurityReview
            && to == Lifecycle::ApprovedDev
            && current.approved_tools.is_none()
            && !current.tools.is_empty();
        if approves_tools {
            next.approved_tools = Some(integrity::approve(
                None,
                &current.tools,
                None,
                &caller.subject,
            ));
        }
        next.transition(to, caller, &reason);
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.lifecycle",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: Some(next.revision),
                details: if approves_tools {
                    let hashes: BTreeMap<&str, &str> = current
                        .tools
                        .iter()
                        .map(|t| (t.name(), t.content_hash.as_str()))
                        .collect();
                    json!({"from": from, "to": to, "reason": reason, "approved_tools": hashes})
                } else {
                    json!({"from": from, "to": to, "reason": reason})
                },
            },
        );
        self.commit(&next, read_at, entry).await?;
        Ok(next)
    }

    /// The REST entry point for recording tools: needs `servers:update` on the server.
    pub async fn set_tools(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        tools: Vec<ToolSpec>,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        caller.require_for(Permission::ServersUpdate, path.as_str())?;
        Self::require_read(caller, path)?;
        let tools = validate_tools("tools", tools)?;
        self.store_tools(caller, ctx, path, tools, ToolSource::Api, expected, &[])
            .await
    }

    /// Records the tool definitions a server declares now, for every source (REST, discovery),
    /// and compares them with the approved ones: a difference from an approved baseline marks
    /// the server `changed_needs_review` and is audited as `server.tools_changed` with the
    /// hashes. The caller has checked that `actor` may do this (discovery runs as the system).
    /// A discovery (the registry's own or a gateway's) that finds the recorded tools unchanged
    /// writes nothing.
    pub async fn record_tools(
        &self,
        actor: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        specs: Vec<ToolSpec>,
        source: ToolSource,
    ) -> Result<ServerRecord> {
        let tools = validate_tools("tools", specs)?;
        self.store_tools(actor, ctx, path, tools, source, None, &[])
            .await
    }

    /// Records a discovered list (`tools/list` objects, every page) as [`Self::record_tools`]
    /// does, leaving out each tool that is not valid (over a limit, a repeated name) with its
    /// reason instead of refusing the list: what a server publishes is not the caller's to fix.
    /// The tools left out are in the audit record (`left_out`), the log, and the answer.
    pub async fn record_listed(
        &self,
        actor: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        listed: &[Value],
        source: ToolSource,
    ) -> Result<(ServerRecord, Vec<LeftOut>)> {
        let (tools, left_out) = tool::validate_listed(listed);
        if !left_out.is_empty() {
            tracing::warn!(server = %path, ?source, left_out = ?left_out, "tools left out of a discovered list");
        }
        let record = self
            .store_tools(actor, ctx, path, tools, source, None, &left_out)
            .await?;
        Ok((record, left_out))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "who, where, what and its provenance, passed once from each entry point"
    )]
    async fn store_tools(
        &self,
        actor: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        tools: Vec<Tool>,
        source: ToolSource,
        expected: Option<u64>,
        left_out: &[LeftOut],
    ) -> Result<ServerRecord> {
        let current = self.load(path).await?;
        Self::require_not_system_owned(actor, &current)?;
        let read_at = check_revision(&current, expected)?;
        // The same tools again (another replica's report, a `PUT` of what is recorded) are
        // no change: no revision, no audit record, no new route for the gateways (a route
        // rebuilt for nothing would cost a stdio child its learned state).
        if current.tools == tools {
            return Ok(current);
        }
        let mut next = current.clone();
        next.tools = tools;
        next.bump(actor);
        let hashes: serde_json::Map<String, Value> = next
            .tools
            .iter()
            .map(|t| (t.name().to_owned(), Value::String(t.content_hash.clone())))
            .collect();
        let changes = next.tool_changes();
        // A new difference from an approved baseline is what reviewers must hear about.
        let newly_changed = next.approved_tools.is_some()
            && !changes.is_empty()
            && changes != current.tool_changes();
        let (action, mut details) = if newly_changed {
            tracing::warn!(server = %path, changes = changes.len(), ?source, "tool definitions differ from the approved ones; the server needs a tools review");
            (
                "server.tools_changed",
                json!({"source": source, "tool_hashes": hashes, "changes": changes}),
            )
        } else {
            (
                "server.tools",
                json!({"source": source, "tool_hashes": hashes}),
            )
        };
        if !left_out.is_empty() {
            details["left_out"] = json!(left_out);
        }
        let entry = audit(
            actor,
            ctx,
            Change {
                action,
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: Some(next.revision),
                details,
            },
        );
        self.commit(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Approves the current definitions of the tools named in `expected` (name → the content
    /// hash the reviewer saw, or `None` to approve that the tool is gone). A hash that is not
    /// the current one is refused: one approves exactly what one reviewed.
    pub async fn approve_tools(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        expected_hashes: &BTreeMap<String, Option<String>>,
        reason: Option<&str>,
        expected: Option<u64>,
    ) -> Result<ServerRecord> {
        caller.require_for(Permission::ToolsApprove, path.as_str())?;
        Self::require_read(caller, path)?;
        let reason = validate::optional_text("reason", reason, mcpgw_core::domain::limits::REASON)?;
        check_approval_shape(expected_hashes)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        let read_at = check_revision(&current, expected)?;
        check_reviewed_hashes(&current, expected_hashes)?;
        let names: Vec<String> = expected_hashes.keys().cloned().collect();
        let mut next = current.clone();
        next.approved_tools = Some(integrity::approve(
            current.approved_tools.as_ref(),
            &current.tools,
            Some(&names),
            &caller.subject,
        ));
        next.bump(caller);
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.tools_approved",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(read_at),
                revision_after: Some(next.revision),
                details: json!({
                    "approved": expected_hashes,
                    "reason": reason,
                    "tools_status": next.tools_status(),
                    "still_changed": next.tool_changes(),
                }),
            },
        );
        self.commit(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Records that a reviewer rejected tool changes: nothing else changes (gateways keep
    /// withholding what nobody approved); the audit record, with the reason, is the decision
    /// the server's owner reads.
    pub async fn reject_tools(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        expected_hashes: &BTreeMap<String, Option<String>>,
        reason: &str,
    ) -> Result<()> {
        caller.require_for(Permission::ToolsApprove, path.as_str())?;
        Self::require_read(caller, path)?;
        let reason = validate::text("reason", reason, 1, mcpgw_core::domain::limits::REASON)?;
        check_approval_shape(expected_hashes)?;
        let current = self.load(path).await?;
        Self::require_not_system_owned(caller, &current)?;
        check_reviewed_hashes(&current, expected_hashes)?;
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "server.tools_rejected",
                resource_type: "server",
                resource_id: path.as_str(),
                revision_before: Some(current.revision),
                revision_after: Some(current.revision),
                details: json!({
                    "rejected": expected_hashes,
                    "reason": reason,
                    "tools_status": current.tools_status(),
                }),
            },
        );
        self.store.insert_audit_batch(&[entry]).await?;
        Ok(())
    }

    // ---- API keys --------------------------------------------------------------------------

    /// Mints a key with at most the caller's own permissions. Returns the record and the only
    /// copy of the plain key.
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        name: &str,
        permissions: Vec<Permission>,
        expires_at: Option<Timestamp>,
    ) -> Result<keys::MintedKey> {
        caller.require(Permission::ApiKeysManage)?;
        let name = validate::text("name", name, 1, 128)?;
        if permissions.is_empty() {
            return Err(
                FieldError::new("permissions", "must grant at least one permission").into(),
            );
        }
        if let Some(p) = permissions.iter().find(|p| !caller.has(**p)) {
            return Err(RegistryError::ForbiddenGrant(format!(
                "a key cannot grant `{p}`, which its creator does not have"
            )));
        }
        if let Some(at) = expires_at
            && at <= Timestamp::now()
        {
            return Err(FieldError::new("expires_at", "must be in the future").into());
        }
        let permissions: Vec<Permission> = permissions
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let minted = keys::mint(None, &name, permissions, &caller.subject, expires_at);
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "api_key.create",
                resource_type: "api_key",
                resource_id: &minted.record.id,
                revision_before: None,
                revision_after: None,
                details: json!({"name": name, "permissions": minted.record.permissions}),
            },
        );
        self.store.insert_api_key(&minted.record, &entry).await?;
        Ok(minted)
    }

    /// A new bootstrap admin key, not yet stored (see [`Registry::store_bootstrap_key`]).
    pub fn mint_bootstrap_key(&self) -> keys::MintedKey {
        keys::mint(
            Some(keys::BOOTSTRAP_ID),
            "bootstrap admin",
            Role::Admin.permissions().into_iter().collect(),
            &Principal::system("bootstrap").subject,
            None,
        )
    }

    /// Stores the bootstrap key unless one was stored before (by this or another replica:
    /// the fixed id makes the second insert a conflict). Returns whether this call stored it.
    pub async fn store_bootstrap_key(&self, minted: &keys::MintedKey) -> Result<bool> {
        let system = Principal::system("bootstrap");
        let entry = audit(
            &system,
            &RequestContext::default(),
            Change {
                action: "api_key.create",
                resource_type: "api_key",
                resource_id: keys::BOOTSTRAP_ID,
                revision_before: None,
                revision_after: None,
                details: json!({"name": "bootstrap admin", "permissions": "admin"}),
            },
        );
        match self.store.insert_api_key(&minted.record, &entry).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A break-glass admin key, minted by an operator with access to the store's config.
    pub async fn create_admin_key(&self, name: &str) -> Result<String> {
        self.create_cli_key(name, Role::Admin.permissions().into_iter().collect())
            .await
    }

    /// A key from the command line (no caller to check), with `permissions`.
    pub async fn create_cli_key(&self, name: &str, permissions: Vec<Permission>) -> Result<String> {
        let system = Principal::system("cli");
        let minted = self
            .create_api_key(&system, &RequestContext::default(), name, permissions, None)
            .await?;
        Ok(minted.plain)
    }

    pub async fn list_api_keys(&self, caller: &Principal) -> Result<Vec<ApiKeyRecord>> {
        caller.require(Permission::ApiKeysManage)?;
        Ok(self.store.list_api_keys().await?)
    }

    pub async fn revoke_api_key(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        id: &str,
    ) -> Result<()> {
        caller.require(Permission::ApiKeysManage)?;
        let key = self
            .store
            .get_api_key(id)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(|| RegistryError::ApiKeyNotFound(id.to_owned()))?;
        if let Some(p) = key.permissions.iter().find(|p| !caller.has(**p)) {
            return Err(RegistryError::ForbiddenGrant(format!(
                "cannot revoke a key that holds `{p}`, which the caller does not have"
            )));
        }
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "api_key.revoke",
                resource_type: "api_key",
                resource_id: id,
                revision_before: None,
                revision_after: None,
                details: json!({}),
            },
        );
        let result = self
            .store
            .revoke_api_key(id, Timestamp::now(), &entry)
            .await;
        self.key_cache.remove(id);
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(RegistryError::ApiKeyNotFound(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// The principal behind a presented API key, or why it is refused.
    pub async fn authenticate_key(&self, presented: &str) -> Result<Principal> {
        let refuse = || {
            RegistryError::Unauthenticated("the API key is invalid, expired or revoked".to_owned())
        };
        let (id, secret) = keys::parse(presented).ok_or_else(refuse)?;
        let record = match self.key_cache.get(id) {
            Some(r) => r,
            None => {
                let r = self.store.get_api_key(id).await?.ok_or_else(refuse)?;
                self.key_cache.put(&r);
                r
            }
        };
        if keys::verify(&record, secret, Timestamp::now()) {
            Ok(keys::principal(&record))
        } else {
            Err(refuse())
        }
    }

    // ---- Policy (scope documents) -----------------------------------------------------------

    /// Every scope document with the policy version.
    pub async fn policy(&self, caller: &Principal) -> Result<PolicySnapshot> {
        caller.require(Permission::PoliciesRead)?;
        Ok(self.store.policy().await?)
    }

    /// Creates or replaces one scope document; returns the new policy version.
    pub async fn put_scope(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        doc: ScopeDocument,
    ) -> Result<u64> {
        caller.require(Permission::PoliciesWrite)?;
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "scope.put",
                resource_type: "scope",
                resource_id: doc.name(),
                revision_before: None,
                revision_after: None,
                details: json!({"rules": doc.server_access().len(), "groups": doc.group_mappings()}),
            },
        );
        let result = self
            .store
            .put_scopes(std::slice::from_ref(&doc), false, &entry)
            .await;
        self.policy_changed();
        Ok(result?)
    }

    /// Imports documents: merged over the stored ones, or replacing all of them.
    pub async fn import_scopes(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        docs: &[ScopeDocument],
        replace_all: bool,
    ) -> Result<u64> {
        caller.require(Permission::PoliciesWrite)?;
        let names: Vec<&str> = docs.iter().map(|d| d.name()).collect();
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "scope.import",
                resource_type: "scope",
                resource_id: "*",
                revision_before: None,
                revision_after: None,
                details: json!({"replace_all": replace_all, "scopes": names}),
            },
        );
        let result = self.store.put_scopes(docs, replace_all, &entry).await;
        self.policy_changed();
        Ok(result?)
    }

    pub async fn delete_scope(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<u64> {
        caller.require(Permission::PoliciesWrite)?;
        let entry = audit(
            caller,
            ctx,
            Change {
                action: "scope.delete",
                resource_type: "scope",
                resource_id: name,
                revision_before: None,
                revision_after: None,
                details: json!({}),
            },
        );
        let result = self.store.delete_scope(name, &entry).await;
        self.policy_changed();
        match result {
            Ok(v) => Ok(v),
            Err(StoreError::NotFound) => Err(RegistryError::ScopeNotFound(name.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// The compiled policy this process decides with, recompiled when the stored version moved.
    pub async fn compiled_policy(&self) -> Result<Arc<CompiledPolicy>> {
        self.policy_cache.current(self.store.as_ref()).await
    }

    /// Every write attempt invalidates (even a failed one may have committed before an error
    /// came back from the store).
    fn catalog_changed(&self) {
        if let Some(c) = &self.catalog {
            c.invalidate();
        }
        self.gateway.changed();
    }

    /// Like [`Registry::catalog_changed`], after every write attempt.
    fn policy_changed(&self) {
        self.policy_cache.invalidate();
        self.gateway.changed();
    }

    // ---- Gateways ---------------------------------------------------------------------------

    /// The routing snapshot, unless its version is one of `known`: then waits up to `wait` for
    /// it to change.
    pub async fn gateway_snapshot(
        &self,
        caller: &Principal,
        known: &[String],
        wait: std::time::Duration,
    ) -> Result<crate::gateway::Poll> {
        caller.require(Permission::GatewaySync)?;
        Ok(self
            .gateway
            .poll(self.store.as_ref(), self.catalog.as_ref(), known, wait)
            .await?)
    }

    /// Stores the events a gateway reports, each id once. Returns (inserted, duplicates).
    pub async fn record_gateway_audit(
        &self,
        caller: &Principal,
        events: Vec<McpAuditEvent>,
    ) -> Result<(usize, usize)> {
        caller.require(Permission::GatewaySync)?;
        let rows = crate::gateway::audit_rows(events, caller)?;
        let count = rows.len();
        let inserted = self.store.insert_audit_rows(rows).await?;
        Ok((inserted, count.saturating_sub(inserted)))
    }

    pub async fn list_audit(
        &self,
        caller: &Principal,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        caller.require(Permission::AuditRead)?;
        let items = self.store.list_audit(filter, before, limit + 1).await?;
        Ok(Page::from_overfetch(items, limit, |r| r.id.clone()))
    }

    /// How many audit records match (`GET /api/v1/audit/count`).
    pub async fn count_audit(&self, caller: &Principal, filter: &AuditFilter) -> Result<u64> {
        caller.require(Permission::AuditRead)?;
        Ok(self.store.count_audit(filter).await?)
    }
}

/// Each named tool's current hash is the one the reviewer saw (`None`: a tool removed since the
/// approval), so a decision is never taken on a definition nobody looked at.
fn check_reviewed_hashes(
    current: &ServerRecord,
    expected_hashes: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    let approved_names = |name: &str| {
        current
            .approved_tools
            .as_ref()
            .is_some_and(|b| b.tools.iter().any(|t| t.name() == name))
    };
    for (name, hash) in expected_hashes {
        let field = format!("tools.{name}");
        let now = current.tools.iter().find(|t| t.name() == name);
        if now.is_none() && !approved_names(name) {
            return Err(FieldError::new(field, "is not a tool of this server").into());
        }
        let now_hash = now.map(|t| t.content_hash.as_str());
        if now_hash != hash.as_deref() {
            let detail = match (hash, now_hash) {
                (Some(h), Some(c)) => format!(
                    "tool {name:?} changed since it was reviewed: expected hash {h}, current hash {c}"
                ),
                (Some(h), None) => format!(
                    "tool {name:?} was removed since it was reviewed (expected hash {h}); approve its removal with null"
                ),
                (None, Some(c)) => format!(
                    "tool {name:?} exists (current hash {c}); null approves only a removed tool"
                ),
                (None, None) => unreachable!("equal hashes"),
            };
            return Err(RegistryError::ToolHashMismatch { field, detail });
        }
    }
    Ok(())
}

/// Limits and formats of an approval body, before anything is read.
fn check_approval_shape(hashes: &BTreeMap<String, Option<String>>) -> Result<()> {
    if hashes.is_empty() {
        return Err(FieldError::new(
            "tools",
            "must name at least one tool with the content hash you reviewed",
        )
        .into());
    }
    if hashes.len() > MAX_TOOLS {
        return Err(FieldError::new(
            "tools",
            format!("at most {MAX_TOOLS} tools can be approved at once"),
        )
        .into());
    }
    for (name, hash) in hashes {
        let field = format!("tools.{name}");
        if name.is_empty() || name.len() > 128 {
            return Err(FieldError::new(field, "tool names are 1 to 128 characters").into());
        }
        if let Some(h) = hash
            && (h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(FieldError::new(
                field,
                "must be a content hash (64 lowercase hex digits, as contentHash shows) or null",
            )
            .into());
        }
    }
    Ok(())
}

fn transport_name(r: &ServerRecord) -> &'static str {
    match r.endpoint {
        mcpgw_core::domain::Endpoint::StreamableHttp { .. } => "streamable-http",
        mcpgw_core::domain::Endpoint::Sse { .. } => "sse",
        mcpgw_core::domain::Endpoint::Stdio { .. } => "stdio",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut target = json!({"a": [1, 2]});
        merge_patch(&mut target, &json!({"a": [3]}));
        assert_eq!(target, json!({"a": [3]}));
    }
}
