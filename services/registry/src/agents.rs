//! The registry's operations on A2A agents: the same rules as for servers (see `service.rs`),
//! on a smaller record: register (with the card, or by fetching it from its URL), read, list,
//! update, delete, enable, lifecycle, card approval and a health check of the card URL.
//!
//! Permissions are the server ones (`servers:*`, `lifecycle:*`, `tools:approve` for card
//! approval), held **unscoped**: a grant scoped to server paths (from an IdP scope document)
//! names MCP servers, and agent paths are a separate namespace, so it grants nothing here.
//!
//! Every fetch of a card (registration by URL, health check) goes through the egress policy:
//! the URL is checked before the request, and names are resolved by the egress resolver at
//! connect time; no redirects are followed, the answer is read up to
//! [`limits::FETCH_BYTES`](mcpgw_core::domain::agent::limits::FETCH_BYTES), within
//! [`FETCH_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcpgw_core::auth::{Permission, Principal};
use mcpgw_core::domain::agent::limits;
use mcpgw_core::domain::{
    AgentCard, AgentHealth, AgentRecord, AgentSpec, HealthStatus, Lifecycle, ServerPath,
    ValidAgentSpec,
};
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::{self, FieldError};
use serde_json::{Value, json};

use crate::error::{RegistryError, Result};
use crate::mcp_client::{Failure, http_client, send_error};
use crate::service::{Change, Page, Registry, RequestContext, audit, patched};
use crate::store::{AgentFilter, AuditRecord, StoreError};
use crate::versioned::{self, Versioned, check_revision, transition_permission};

/// Time allowed for one card fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn not_found(path: &ServerPath) -> RegistryError {
    RegistryError::AgentNotFound(path.to_string())
}

fn store_error(e: StoreError, path: &ServerPath, expected: u64) -> RegistryError {
    versioned::store_error(e, expected, || not_found(path))
}

fn change<'a>(
    action: &'a str,
    path: &'a ServerPath,
    before: Option<u64>,
    after: Option<u64>,
    details: Value,
) -> Change<'a> {
    Change {
        action,
        resource_type: "agent",
        resource_id: path.as_str(),
        revision_before: before,
        revision_after: after,
        details,
    }
}

impl Registry {
    /// Fetches and validates the card at `url`; the error is a health reason
    /// (`timeout`, `http_status 404`, `invalid_card card.name: …`, …).
    pub async fn fetch_agent_card(&self, url: &str) -> std::result::Result<AgentCard, String> {
        self.egress
            .check_url(url)
            .await
            .map_err(|e| Failure::Egress(e.to_string()).to_string())?;
        let client = http_client(Arc::new(self.egress.clone()), CONNECT_TIMEOUT);
        let fetch = async {
            let response = client
                .get(url)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| send_error(&e).to_string())?;
            if response.status() != http::StatusCode::OK {
                return Err(Failure::Http(response.status().as_u16()).to_string());
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| send_error(&e).to_string())?;
                if body.len() + chunk.len() > limits::FETCH_BYTES {
                    return Err(format!(
                        "too_large: the card exceeds {} bytes",
                        limits::FETCH_BYTES
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| Failure::Timeout.to_string())??;
        let card: AgentCard =
            mcpgw_core::input::parse_json_bytes(&body).map_err(|e| format!("invalid_card: {e}"))?;
        card.validate().map_err(|e| format!("invalid_card {e}"))
    }

    /// Checks URLs against the egress policy and fills in the card from `card_url` if absent.
    async fn resolve_agent_spec(&self, mut spec: ValidAgentSpec) -> Result<ValidAgentSpec> {
        for (field, url) in spec.urls_to_check() {
            self.egress
                .check_url(&url)
                .await
                .map_err(|error| RegistryError::Egress { field, error })?;
        }
        if spec.card.is_none() {
            let url = spec.card_url.clone().unwrap_or_default();
            let card = self.fetch_agent_card(&url).await.map_err(|detail| {
                RegistryError::AgentCardUnusable {
                    field: "card_url".to_owned(),
                    detail: format!("the card could not be used: {detail}"),
                }
            })?;
            self.egress
                .check_url(&card.url)
                .await
                .map_err(|error| RegistryError::Egress {
                    field: "card.url".to_owned(),
                    error,
                })?;
            spec.card = Some(card);
        }
        Ok(spec)
    }

    async fn load_agent(&self, path: &ServerPath) -> Result<AgentRecord> {
        self.store
            .get_agent(path)
            .await?
            .ok_or_else(|| not_found(path))
    }

    /// Writes `next` (revision already bumped) in place of a record read at `expected`.
    async fn commit_agent(
        &self,
        next: &AgentRecord,
        expected: u64,
        entry: AuditRecord,
    ) -> Result<()> {
        self.store
            .update_agent(next, expected, &entry)
            .await
            .map_err(|e| store_error(e, &next.path, expected))?;
        self.search_index.agent_changed(next);
        Ok(())
    }

    pub async fn create_agent(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        spec: AgentSpec,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ServersCreate)?;
        let valid = spec.validate()?;
        if valid.path.is_none() {
            return Err(FieldError::new("path", "is required").into());
        }
        let valid = self.resolve_agent_spec(valid).await?;
        let record = AgentRecord::create(valid, &caller.subject)?;
        let entry = audit(
            caller,
            ctx,
            change(
                "agent.create",
                &record.path,
                None,
                Some(record.revision),
                json!({"name": record.card.name, "card_url": record.card_url, "card_hash": record.card_hash}),
            ),
        );
        match self.store.insert_agent(&record, &entry).await {
            Ok(()) => {
                self.search_index.agent_changed(&record);
                Ok(record)
            }
            Err(StoreError::Conflict(_)) => {
                Err(RegistryError::AgentExists(record.path.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_agent(&self, caller: &Principal, path: &ServerPath) -> Result<AgentRecord> {
        caller.require(Permission::ServersRead)?;
        self.load_agent(path).await
    }

    pub async fn list_agents(
        &self,
        caller: &Principal,
        filter: &AgentFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<AgentRecord>> {
        caller.require(Permission::ServersRead)?;
        let items = self.store.list_agents(filter, after, limit + 1).await?;
        Ok(Page::from_overfetch(items, limit, |r| r.path.to_string()))
    }

    pub async fn replace_agent(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        spec: AgentSpec,
        expected: Option<u64>,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ServersUpdate)?;
        let current = self.load_agent(path).await?;
        let read_at = check_revision(&current, expected)?;
        let valid = self.resolve_agent_spec(spec.validate()?).await?;
        let mut next = current.clone();
        next.apply_spec(valid)?;
        next.bump(caller);
        let before = serde_json::to_value(current.to_spec()).unwrap_or_default();
        let after = serde_json::to_value(next.to_spec()).unwrap_or_default();
        let changed: Vec<&String> = after
            .as_object()
            .into_iter()
            .flat_map(|a| a.keys())
            .filter(|k| before.get(k.as_str()) != after.get(k.as_str()))
            .collect();
        let entry = audit(
            caller,
            ctx,
            change(
                "agent.update",
                path,
                Some(read_at),
                Some(next.revision),
                json!({"changed": changed, "card_hash": next.card_hash}),
            ),
        );
        self.commit_agent(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Applies a JSON merge patch (RFC 7396) to the writable fields.
    pub async fn patch_agent(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        patch: Value,
        expected: Option<u64>,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ServersUpdate)?;
        let current = self.load_agent(path).await?;
        check_revision(&current, expected)?;
        let merged = patched(&current.to_spec(), &patch)?;
        let spec: AgentSpec = crate::api::extract::parse_json_value(merged)?;
        self.replace_agent(caller, ctx, path, spec, Some(current.revision))
            .await
    }

    pub async fn delete_agent(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        expected: Option<u64>,
    ) -> Result<()> {
        caller.require(Permission::ServersDelete)?;
        let current = self.load_agent(path).await?;
        let read_at = check_revision(&current, expected)?;
        if current.lifecycle.blocks_delete() {
            return Err(RegistryError::AgentDeleteBlocked(current.lifecycle));
        }
        let entry = audit(
            caller,
            ctx,
            change(
                "agent.delete",
                path,
                Some(read_at),
                None,
                json!({"name": current.card.name, "lifecycle": current.lifecycle}),
            ),
        );
        self.store
            .delete_agent(path, read_at, &entry)
            .await
            .map_err(|e| store_error(e, path, read_at))?;
        self.search_index.agent_removed(path.as_str());
        Ok(())
    }

    pub async fn set_agent_enabled(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        enabled: bool,
        expected: Option<u64>,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ServersToggle)?;
        let current = self.load_agent(path).await?;
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
            change(
                "agent.toggle",
                path,
                Some(read_at),
                Some(next.revision),
                json!({"enabled": enabled}),
            ),
        );
        self.commit_agent(&next, read_at, entry).await?;
        Ok(next)
    }

    /// The servers' state machine and permissions. The review (`security_review →
    /// approved_dev`) approves the card as it stands: its hash becomes the baseline.
    pub async fn transition_agent(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        to: Lifecycle,
        reason: &str,
        expected: Option<u64>,
    ) -> Result<AgentRecord> {
        let reason = validate::text("reason", reason, 1, mcpgw_core::domain::limits::REASON)?;
        let current = self.load_agent(path).await?;
        let from = current.lifecycle;
        caller.require(transition_permission(from, to)?)?;
        let read_at = check_revision(&current, expected)?;
        let mut next = current.clone();
        let approves_card = from == Lifecycle::SecurityReview && to == Lifecycle::ApprovedDev;
        if approves_card {
            next.approved_card_hash = Some(current.card_hash.clone());
        }
        next.transition(to, caller, &reason);
        let mut details = json!({"from": from, "to": to, "reason": reason});
        if approves_card {
            details["approved_card_hash"] = json!(current.card_hash);
        }
        let entry = audit(
            caller,
            ctx,
            change(
                "agent.lifecycle",
                path,
                Some(read_at),
                Some(next.revision),
                details,
            ),
        );
        self.commit_agent(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Approves the stored card again after a change: `card_hash` must be the current one
    /// (one approves exactly what one reviewed). Needs `tools:approve`, like tool changes.
    pub async fn approve_agent_card(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
        path: &ServerPath,
        card_hash: &str,
        expected: Option<u64>,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ToolsApprove)?;
        let current = self.load_agent(path).await?;
        let read_at = check_revision(&current, expected)?;
        if current.card_hash != card_hash {
            return Err(RegistryError::ToolHashMismatch {
                field: "card_hash".to_owned(),
                detail: format!(
                    "the card changed since it was reviewed: expected hash {card_hash}, current hash {}",
                    current.card_hash
                ),
            });
        }
        let mut next = current.clone();
        next.approved_card_hash = Some(card_hash.to_owned());
        next.bump(caller);
        let entry = audit(
            caller,
            ctx,
            change(
                "agent.card_approved",
                path,
                Some(read_at),
                Some(next.revision),
                json!({"card_hash": card_hash, "previous": current.approved_card_hash}),
            ),
        );
        self.commit_agent(&next, read_at, entry).await?;
        Ok(next)
    }

    /// Fetches the card URL now and stores the result as the agent's health (no revision
    /// bump). A served card that newly differs from the approved one is audited as
    /// `agent.card_changed`. Needs `servers:update`, like a server's manual check.
    pub async fn check_agent_health(
        &self,
        caller: &Principal,
        path: &ServerPath,
    ) -> Result<AgentRecord> {
        caller.require(Permission::ServersUpdate)?;
        let mut record = self.load_agent(path).await?;
        let started = Instant::now();
        let fetched = self.fetch_agent_card(&record.card_url).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let before = record.card_status();
        let previous_served = record.health.served_card_hash.clone();
        record.health = match fetched {
            Ok(card) => AgentHealth {
                status: HealthStatus::Healthy,
                reason: None,
                checked_at: Some(Timestamp::now()),
                latency_ms: Some(latency_ms),
                served_card_hash: Some(card.content_hash()),
            },
            Err(reason) => AgentHealth {
                status: HealthStatus::Unhealthy,
                reason: Some(reason),
                checked_at: Some(Timestamp::now()),
                latency_ms: Some(latency_ms),
                // What the agent served last stays known while it is down.
                served_card_hash: previous_served.clone(),
            },
        };
        self.store.update_agent_health(path, &record.health).await?;
        let served = record.health.served_card_hash.clone();
        if served != previous_served
            && record.card_status() == mcpgw_core::domain::CardStatus::ChangedNeedsReview
            && before != record.card_status()
        {
            tracing::warn!(agent = %path, "the served agent card differs from the approved one; the agent needs a review");
            let entry = audit(
                &Principal::system("health"),
                &RequestContext::default(),
                change(
                    "agent.card_changed",
                    path,
                    None,
                    None,
                    json!({"approved_card_hash": record.approved_card_hash, "served_card_hash": served, "checked_by": caller.subject}),
                ),
            );
            self.store.insert_audit_batch(&[entry]).await?;
        }
        Ok(record)
    }
}
