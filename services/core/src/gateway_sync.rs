//! The contract between the registry and its gateways: the routing snapshot gateways fetch,
//! and the audit events they send back.
//!
//! The registry builds it from the catalog and the policy; gateways fetch it with a long poll
//! (`GET /api/v1/gateway/snapshot` with `If-None-Match`), keep the last good copy on disk and
//! serve from it when the registry is unreachable. Credentials travel and rest sealed: a
//! gateway opens them with the same keyring as the registry, so neither the wire nor the disk
//! copy holds a plain secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::integrity::{self, Gate};
use crate::domain::{
    DeploymentStage, Endpoint, GatewaySettings, HealthStatus, IntegrityMode, ServerPath,
    ServerRecord, UpstreamAuth,
};
use crate::policy::PolicySnapshot;
use crate::secrets::SealedSecret;
use crate::time::Timestamp;

/// Every routable server and the policy, as of one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySnapshot {
    /// A digest of everything below except `generated_at`: equal versions mean equal routing.
    pub version: String,
    pub generated_at: Timestamp,
    pub stage: DeploymentStage,
    pub servers: Vec<RouteEntry>,
    pub policy: PolicySnapshot,
    /// The registry's damped health status of routed servers whose status is known, by path.
    /// Apart from the route entries on purpose: a status change must reach gateways (it
    /// changes the version) without rebuilding the route, which would restart a stdio child.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub health: BTreeMap<String, RouteHealth>,
}

/// One routed server's health as the registry sees it (after damping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteHealth {
    pub status: HealthStatus,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

/// One routable server, with its credentials still sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// Sealed values are bound to this id, the field and the endpoint below (see
    /// [`RouteEntry::secret_context`]).
    pub id: Uuid,
    pub path: ServerPath,
    pub name: String,
    pub revision: u64,
    pub endpoint: Endpoint,
    pub upstream_auth: UpstreamAuth,
    pub custom_headers: BTreeMap<String, SealedSecret>,
    pub gateway: GatewaySettings,
    /// Tools the registry knows of (current and approved), for write protection before the
    /// gateway has seen a list, and for tool integrity.
    pub tools: Vec<RouteTool>,
    /// How gateways enforce the approved tool definitions; none: the server has neither
    /// recorded nor approved tools, so there is nothing to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_integrity: Option<IntegrityMode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTool {
    pub name: String,
    pub read_only: bool,
    /// Hash of the definition the registry holds now (none: approved, since removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_hash: Option<String>,
    /// Hash of the approved definition (none: never approved, i.e. new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<String>,
    /// The approved definition as an MCP tool object (served in `serve_approved` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<serde_json::Value>,
    /// The registry's view: gateways hide this tool (they also compare live definitions).
    #[serde(default)]
    pub withheld: bool,
    /// The current definition as an MCP tool object (name, title, description, inputSchema,
    /// annotations): what the gateway's aggregated endpoint searches and shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
}

impl RouteTool {
    /// What a gateway does with this tool when the upstream lists it with `live_hash` (none:
    /// not seen live yet, so the registry's current hash stands in).
    pub fn gate(&self, mode: IntegrityMode, live_hash: Option<&str>) -> Gate {
        let current = live_hash.or(self.current_hash.as_deref());
        integrity::gate(mode, self.approved_hash.as_deref(), current)
    }
}

impl RouteEntry {
    /// The context a sealed value of this entry opens with: bound to the entry's endpoint as
    /// it is now, so a value sealed for another destination does not open (see
    /// [`crate::domain::secret_context`]).
    pub fn secret_context(&self, field: &str) -> String {
        crate::domain::secret_context(self.id, &self.endpoint, &self.upstream_auth, field)
    }

    /// `default_integrity` applies unless the server's gateway settings name a mode.
    pub fn from_record(record: &ServerRecord, default_integrity: IntegrityMode) -> Self {
        let baseline = record.approved_tools.as_ref();
        // A stdio server's tools are known only once a gateway that runs it has listed them
        // (`POST /api/v1/gateway/tools`): until then nothing it declares is served, where an
        // HTTP server with nothing recorded yet is not held (the registry lists it itself).
        let enforced = baseline.is_some()
            || !record.tools.is_empty()
            || matches!(record.endpoint, Endpoint::Stdio { .. });
        let tool_integrity =
            enforced.then(|| record.gateway.tool_integrity.unwrap_or(default_integrity));
        let approved_of =
            |name: &str| baseline.and_then(|b| b.tools.iter().find(|t| t.name() == name));
        let mut tools: Vec<RouteTool> = record
            .tools
            .iter()
            .map(|t| {
                let approved = approved_of(t.name());
                RouteTool {
                    name: t.name().to_owned(),
                    read_only: t.is_read_only(),
                    current_hash: Some(t.content_hash.clone()),
                    approved_hash: approved.map(|a| a.content_hash.clone()),
                    approved: approved.and_then(|a| serde_json::to_value(&a.spec).ok()),
                    withheld: false,
                    definition: serde_json::to_value(&t.spec).ok(),
                }
            })
            .collect();
        // Approved tools the registry no longer records: the upstream may still list them.
        let removed = baseline
            .into_iter()
            .flat_map(|b| &b.tools)
            .filter(|a| !record.tools.iter().any(|t| t.name() == a.name()));
        tools.extend(removed.map(|a| RouteTool {
            name: a.name().to_owned(),
            read_only: a.is_read_only(),
            current_hash: None,
            approved_hash: Some(a.content_hash.clone()),
            approved: serde_json::to_value(&a.spec).ok(),
            withheld: false,
            definition: None,
        }));
        if let Some(mode) = tool_integrity {
            for t in &mut tools {
                t.withheld = t.gate(mode, None) == Gate::Hide;
            }
        }
        Self {
            id: record.id,
            path: record.path.clone(),
            name: record.name.clone(),
            revision: record.revision,
            endpoint: record.endpoint.clone(),
            upstream_auth: record.upstream_auth.clone(),
            custom_headers: record.custom_headers.clone(),
            gateway: record.gateway.clone(),
            tools,
            tool_integrity,
        }
    }
}

impl GatewaySnapshot {
    /// Builds a snapshot of the routable `records` (sorted by path) and `policy`, with the
    /// default tool-integrity mode.
    pub fn build<'r>(
        stage: DeploymentStage,
        records: impl IntoIterator<Item = &'r ServerRecord>,
        policy: PolicySnapshot,
    ) -> Self {
        Self::build_with(stage, records, policy, IntegrityMode::default())
    }

    /// Like [`GatewaySnapshot::build`], with the registry's tool-integrity mode for servers
    /// that do not set their own.
    pub fn build_with<'r>(
        stage: DeploymentStage,
        records: impl IntoIterator<Item = &'r ServerRecord>,
        policy: PolicySnapshot,
        default_integrity: IntegrityMode,
    ) -> Self {
        let routable: Vec<&ServerRecord> = records
            .into_iter()
            .filter(|r| r.is_routable(stage))
            .collect();
        let mut servers: Vec<RouteEntry> = routable
            .iter()
            .map(|r| RouteEntry::from_record(r, default_integrity))
            .collect();
        servers.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        let health: BTreeMap<String, RouteHealth> = routable
            .iter()
            .filter(|r| r.health.status != HealthStatus::Unknown)
            .map(|r| {
                let health = RouteHealth {
                    status: r.health.status,
                    since: r.health.since,
                };
                (r.path.as_str().to_owned(), health)
            })
            .collect();
        let version = digest(stage, &servers, &policy, &health);
        Self {
            version,
            generated_at: Timestamp::now(),
            stage,
            servers,
            policy,
            health,
        }
    }

    /// Whether `version` matches the content (a disk copy or a response was not altered).
    pub fn is_consistent(&self) -> bool {
        digest(self.stage, &self.servers, &self.policy, &self.health) == self.version
    }
}

/// One MCP request a gateway decided on: every tool call and every denied attempt.
///
/// Gateways log it as JSON and send it in batches to `POST /api/v1/gateway/audit`; the
/// registry stores each id once, so a batch resent after a lost answer adds nothing twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpAuditEvent {
    /// Time-ordered unique id (UUIDv7), made by the gateway.
    pub id: Uuid,
    pub at: Timestamp,
    pub request_id: String,
    /// The gateway process that decided.
    pub gateway: String,
    /// Server path.
    pub server: String,
    /// JSON-RPC method.
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Token subject.
    pub subject: String,
    /// The user's name when the token carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The OAuth client (agent) that holds the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub issuer: String,
    /// `allowed` or `denied`.
    pub decision: AuditDecision,
    /// Why: a policy reason (`no_rule_for_server`, `tool_not_allowed`, …), `write_protected`,
    /// `rate_limited`, or `allowed`.
    pub reason: String,
    /// The rule that allowed it (`scope "x" server_access[2]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<String>,
    /// `ok`, `tool_error`, `jsonrpc_error`, `upstream_error`, `timeout`, `cancelled`, `busy`
    /// (the server's in-flight limit), `denied`.
    pub status: String,
    /// From the request reaching the gateway to the final answer leaving it.
    pub latency_ms: f64,
    /// Only when the server's `gateway.log_arguments` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<serde_json::Value>,
    /// How many requests this event stands for: 1, except for refusals before the caller is
    /// known, which a gateway coalesces per server and reason over a window (the first is
    /// its own event, the rest one event with their count). Left out when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schema(default = 1, minimum = 1)]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allowed,
    Denied,
}

/// A batch of events (at most [`MAX_AUDIT_BATCH`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpAuditBatch {
    pub events: Vec<McpAuditEvent>,
}

pub const MAX_AUDIT_BATCH: usize = 1000;

/// A gateway's checks of the stdio servers it runs as child processes
/// (`POST /api/v1/gateway/health`, at most [`MAX_HEALTH_BATCH`] reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioHealthBatch {
    /// The reporting gateway process (its `instance_id`).
    pub gateway: String,
    pub reports: Vec<StdioHealthReport>,
}

/// One check of one stdio server by a gateway: `healthy`, `degraded` or `unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioHealthReport {
    pub server: String,
    pub status: crate::domain::HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub latency_ms: u64,
}

pub const MAX_HEALTH_BATCH: usize = 1000;

/// The tools a gateway listed from a stdio server it runs, on the child's start and on its
/// `notifications/tools/list_changed` (`POST /api/v1/gateway/tools`). The registry records
/// them as it records its own discovery of an HTTP server, so review, approval and
/// withholding apply alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioToolsReport {
    /// The reporting gateway process (its `instance_id`).
    pub gateway: String,
    pub server: String,
    /// The `tools` of the server's `tools/list` results, every page, as listed.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<serde_json::Value>,
}

fn digest(
    stage: DeploymentStage,
    servers: &[RouteEntry],
    policy: &PolicySnapshot,
    health: &BTreeMap<String, RouteHealth>,
) -> String {
    #[derive(Serialize)]
    struct Content<'a> {
        stage: DeploymentStage,
        servers: &'a [RouteEntry],
        policy: &'a PolicySnapshot,
        // Left out when empty, so copies written before health was carried keep their version.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        health: &'a BTreeMap<String, RouteHealth>,
    }
    let bytes = serde_json::to_vec(&Content {
        stage,
        servers,
        policy,
        health,
    })
    .expect("a snapshot serializes");
    let hash = Sha256::digest(&bytes);
    hash[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Lifecycle, ServerSpec};
    use crate::secrets::Keyring;

    fn record(path: &str, lifecycle: Lifecycle, enabled: bool) -> ServerRecord {
        let spec: ServerSpec = serde_json::from_value(serde_json::json!({
            "path": path, "name": path,
            "endpoint": {"transport": "streamable-http", "url": "https://example.com/mcp"},
            "upstream_auth": {"type": "bearer", "token": "s3cret-token"},
            "governance": {"owner_team": "t"}
        }))
        .unwrap();
        let keyring = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
        let mut rec =
            ServerRecord::create(spec.validate().unwrap(), &keyring, "t", enabled).unwrap();
        rec.lifecycle = lifecycle;
        rec
    }

    #[test]
    fn only_routable_servers_sorted_and_secrets_stay_sealed() {
        let records = [
            record("zeta", Lifecycle::ApprovedDev, true),
            record("alpha", Lifecycle::ApprovedDev, true),
            record("off", Lifecycle::ApprovedDev, false),
            record("draft", Lifecycle::Draft, true),
        ];
        let snap = GatewaySnapshot::build(
            DeploymentStage::NonProduction,
            &records,
            PolicySnapshot {
                version: 3,
                documents: vec![],
            },
        );
        let paths: Vec<&str> = snap.servers.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["alpha", "zeta"]);
        let wire = serde_json::to_string(&snap).unwrap();
        assert!(!wire.contains("s3cret-token"), "{wire}");
        assert!(snap.is_consistent());
    }

    #[test]
    fn version_follows_content_not_time() {
        let records = [record("aa", Lifecycle::ApprovedDev, true)];
        let policy = PolicySnapshot {
            version: 1,
            documents: vec![],
        };
        let one = GatewaySnapshot::build(DeploymentStage::NonProduction, &records, policy.clone());
        let two = GatewaySnapshot::build(DeploymentStage::NonProduction, &records, policy.clone());
        assert_eq!(one.version, two.version);
        let bumped = PolicySnapshot {
            version: 2,
            ..policy
        };
        let three = GatewaySnapshot::build(DeploymentStage::NonProduction, &records, bumped);
        assert_ne!(one.version, three.version);
        let mut tampered = one.clone();
        tampered.servers[0].name = "other".into();
        assert!(!tampered.is_consistent());
    }

    #[test]
    fn a_health_change_changes_the_version_but_not_the_route_entry() {
        let policy = PolicySnapshot {
            version: 1,
            documents: vec![],
        };
        let stage = DeploymentStage::NonProduction;
        let mut records = [record("aa", Lifecycle::ApprovedDev, true)];
        let unknown = GatewaySnapshot::build(stage, &records, policy.clone());
        assert!(unknown.health.is_empty(), "unknown health is not carried");
        records[0].health.status = HealthStatus::Healthy;
        let healthy = GatewaySnapshot::build(stage, &records, policy.clone());
        records[0].health.status = HealthStatus::Unhealthy;
        records[0].health.reason = Some("timeout".into());
        let unhealthy = GatewaySnapshot::build(stage, &records, policy.clone());
        assert_eq!(healthy.health["aa"].status, HealthStatus::Healthy);
        assert_eq!(unhealthy.health["aa"].status, HealthStatus::Unhealthy);
        assert_ne!(healthy.version, unhealthy.version);
        assert_ne!(unknown.version, healthy.version);
        assert_eq!(healthy.servers, unhealthy.servers);
        // A reason that changes without a status change is not routing news.
        records[0].health.reason = Some("connection refused".into());
        let same = GatewaySnapshot::build(stage, &records, policy);
        assert_eq!(same.version, unhealthy.version);
        let mut tampered = unhealthy.clone();
        tampered.health.clear();
        assert!(!tampered.is_consistent());
    }
}
