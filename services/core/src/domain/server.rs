//! A registered MCP server: identity, endpoint, upstream credentials, governance, lifecycle,
//! health and tools.
//!
//! Validation rules live here, in one place, so that every entry point (REST, the registry's
//! own MCP tools, the UI) refuses the same inputs with the same field names. URL checks that
//! need DNS (the egress policy) happen in the service layer, on the URLs listed by
//! [`ServerSpec::urls_to_check`].

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::integrity::{self, IntegrityMode, ToolBaseline, ToolChange, ToolsStatus};
use super::lifecycle::{DeploymentStage, Lifecycle, LifecycleEvent};
use super::tool::Tool;
use crate::secrets::{Keyring, SealedSecret, SecretError};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Path segments that the gateway and registry use themselves.
const RESERVED_PATHS: &[&str] = &[
    "api",
    "mcp",
    "sse",
    "messages",
    "message",
    "health",
    "ready",
    "metrics",
    "admin",
    "auth",
    "login",
    "logout",
    "oauth",
    "oauth2",
    "validate",
    "static",
    "assets",
    "ui",
    "console",
    "openapi",
    "docs",
    "well-known",
    "v0",
    "v01",
    "registry",
    "gateway",
    "internal",
];

/// The URL segment a server is served under: `https://gateway/{path}/mcp`.
///
/// 2–64 characters: lowercase letters, digits and single hyphens, starting with a letter and
/// not ending with a hyphen; not one of the segments the platform reserves.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,63}$", example = "weather")]
pub struct ServerPath(String);

impl ServerPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let len = text.len();
        if !(2..=64).contains(&len) {
            return Err(format!("must be 2 to 64 characters (got {len})"));
        }
        let bytes = text.as_bytes();
        if !bytes[0].is_ascii_lowercase() {
            return Err(format!("{text:?} must start with a lowercase letter"));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return Err(format!(
                "{text:?} may contain only lowercase letters, digits and hyphens"
            ));
        }
        if text.ends_with('-') || text.contains("--") {
            return Err(format!(
                "{text:?} must not end with a hyphen or contain two in a row"
            ));
        }
        if RESERVED_PATHS.contains(&text) {
            return Err(format!(
                "{text:?} is reserved by the platform; choose another path"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerPath {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ServerPath> for String {
    fn from(value: ServerPath) -> Self {
        value.0
    }
}

impl std::fmt::Display for ServerPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Governance

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    #[default]
    Dev,
    Staging,
    Prod,
}

impl Environment {
    pub fn as_str(&self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Prod => "prod",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataClassification {
    Public,
    #[default]
    Internal,
    Confidential,
    Restricted,
}

/// Who provides the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub organization: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Governance metadata from the blueprint's registration checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// What the server does for the business, e.g. "Sales pipeline management".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_capability: Option<String>,
    /// The team that owns the server (required: every server has an owner).
    pub owner_team: String,
    /// The person to contact about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical_owner: Option<String>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub risk_level: RiskLevel,
    #[serde(default)]
    pub data_classification: DataClassification,
    /// Scopes a caller needs to use the server, e.g. `salesforce.opportunity.read`.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A URL the health checker probes instead of the MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_endpoint: Option<String>,
    /// Seconds between the registry's health checks of this server; none = the registry's
    /// `health.interval_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_interval_seconds: Option<u32>,
    /// SPDX identifier or license name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
}

/// How gateways treat one server: write protection, argument logging and its limits.
/// Every field has a default, so specs may omit the whole object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Write protection: tools without `readOnlyHint: true` are hidden and refused unless the
    /// caller's matching policy rule says `allow_write` (like the AWS MCP proxy's
    /// `--allow-write`).
    pub read_only: bool,
    /// Put tool-call arguments into audit events (off: arguments may carry personal data).
    pub log_arguments: bool,
    /// Tool calls per minute for one caller on this server (token bucket); none = the
    /// gateway's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_minute: Option<u32>,
    /// Tool calls per minute for one caller and one tool, by tool name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_calls_per_minute: BTreeMap<String, u32>,
    /// Largest tool result passed to the caller, in bytes; larger results are cut with a
    /// notice. None = the gateway's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u32>,
    /// Requests in flight to this server from one gateway process; none = the gateway's
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// What gateways do with tools that changed since their approval; none = the registry's
    /// `tools.integrity_mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_integrity: Option<IntegrityMode>,
    /// Gateways add the caller they verified to each request (header `x-mcpgw-caller`), so a
    /// server that trusts the credential it receives can act for that caller. Set on the
    /// registry's own MCP server; Streamable HTTP only. See docs/security.md.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub assert_caller: bool,
}

impl GatewaySettings {
    fn validate(&self) -> Result<GatewaySettings, FieldError> {
        let positive = |field: &str, v: Option<u32>, max: u32| match v {
            Some(n) if n == 0 || n > max => Err(FieldError::new(
                format!("gateway.{field}"),
                format!("must be between 1 and {max}"),
            )),
            _ => Ok(()),
        };
        positive("calls_per_minute", self.calls_per_minute, 1_000_000)?;
        positive("max_result_bytes", self.max_result_bytes, 64 * 1024 * 1024)?;
        positive("max_concurrency", self.max_concurrency, 10_000)?;
        if self.tool_calls_per_minute.len() > limits::TOOL_LIMITS {
            return Err(FieldError::new(
                "gateway.tool_calls_per_minute",
                format!("has more than {} entries", limits::TOOL_LIMITS),
            ));
        }
        for (tool, n) in &self.tool_calls_per_minute {
            let field = format!("gateway.tool_calls_per_minute.{tool}");
            validate::text(&field, tool, 1, 128)?;
            positive(
                &format!("tool_calls_per_minute.{tool}"),
                Some(*n),
                1_000_000,
            )?;
        }
        Ok(self.clone())
    }
}

/// Bounds of `governance.health_check_interval_seconds`.
pub const HEALTH_INTERVAL_MIN: u32 = 5;
pub const HEALTH_INTERVAL_MAX: u32 = 86_400;

impl Governance {
    /// Checks and normalizes the governance metadata (shared by servers and agents).
    pub fn validate(&self) -> Result<Governance, FieldError> {
        let g = |f: &str| format!("governance.{f}");
        let required_scopes =
            validate::list(&g("required_scopes"), &self.required_scopes, 32, |f, s| {
                validate::identifier(f, s, 128, "._:/-")
            })?;
        let version = validate::optional_text(&g("version"), self.version.as_deref(), 64)?;
        if let Some(v) = &version
            && v.contains(char::is_whitespace)
        {
            return Err(FieldError::new(g("version"), "must not contain spaces"));
        }
        let provider = match &self.provider {
            None => None,
            Some(p) => Some(Provider {
                organization: validate::text(&g("provider.organization"), &p.organization, 1, 128)?,
                url: match validate::optional_text(&g("provider.url"), p.url.as_deref(), 2048)? {
                    None => None,
                    Some(u) => Some(web_url(&g("provider.url"), &u)?.to_string()),
                },
            }),
        };
        Ok(Governance {
            business_capability: validate::optional_text(
                &g("business_capability"),
                self.business_capability.as_deref(),
                256,
            )?,
            owner_team: validate::text(&g("owner_team"), &self.owner_team, 1, 128)?,
            technical_owner: validate::optional_text(
                &g("technical_owner"),
                self.technical_owner.as_deref(),
                256,
            )?,
            environment: self.environment,
            risk_level: self.risk_level,
            data_classification: self.data_classification,
            required_scopes: dedup(required_scopes),
            version,
            health_check_endpoint: match validate::optional_text(
                &g("health_check_endpoint"),
                self.health_check_endpoint.as_deref(),
                2048,
            )? {
                None => None,
                Some(u) => Some(web_url(&g("health_check_endpoint"), &u)?.to_string()),
            },
            health_check_interval_seconds: match self.health_check_interval_seconds {
                Some(n) if !(HEALTH_INTERVAL_MIN..=HEALTH_INTERVAL_MAX).contains(&n) => {
                    return Err(FieldError::new(
                        g("health_check_interval_seconds"),
                        format!(
                            "must be between {HEALTH_INTERVAL_MIN} and {HEALTH_INTERVAL_MAX} seconds"
                        ),
                    ));
                }
                other => other,
            },
            license: validate::optional_text(&g("license"), self.license.as_deref(), 64)?,
            provider,
        })
    }
}

/// A spec's optional `path` (required on create, checked against the URL on update).
pub(crate) fn spec_path(path: Option<&str>) -> Result<Option<ServerPath>, FieldError> {
    path.map(|p| ServerPath::parse(p).map_err(|m| FieldError::new("path", m)))
        .transpose()
}

/// A spec's `tags`: lowercased identifiers, at most `limits::TAGS`, duplicates dropped.
pub(crate) fn spec_tags(tags: &[String]) -> Result<Vec<String>, FieldError> {
    let tags = validate::list("tags", tags, limits::TAGS, |f, t| {
        validate::identifier(f, &t.trim().to_ascii_lowercase(), limits::TAG, "-_.:")
    })?;
    Ok(dedup(tags))
}

pub(crate) fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}

/// A syntactically valid http(s) URL (no egress check: that needs DNS, see the service layer).
pub(crate) fn web_url(field: &str, text: &str) -> Result<Url, FieldError> {
    if text.len() > 2048 {
        return Err(FieldError::new(field, "must be at most 2048 characters"));
    }
    let url =
        Url::parse(text).map_err(|e| FieldError::new(field, format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new(
            field,
            format!("must use http or https (got {:?})", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must name a host"));
    }
    Ok(url)
}

// ---------------------------------------------------------------------------------------------
// Endpoint and upstream credentials: the input shapes

/// How the gateway reaches the server (input form: stdio env values are write-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "transport", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EndpointSpec {
    StreamableHttp {
        url: String,
    },
    /// The deprecated HTTP+SSE transport (2024-11-05).
    Sse {
        url: String,
    },
    /// A command the gateway runs as a child process.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        /// Environment for the process; values are sealed at rest and never returned.
        /// Omit to keep the stored environment.
        #[serde(default, skip_serializing)]
        env: Option<BTreeMap<String, String>>,
    },
}

/// Credentials the gateway injects upstream (input form: secrets are write-only; omit a
/// secret on update to keep the stored one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamAuthSpec {
    #[default]
    None,
    Bearer {
        #[serde(default, skip_serializing)]
        token: Option<String>,
    },
    ApiKey {
        /// Header that carries the key, e.g. `X-API-Key`.
        header: String,
        #[serde(default, skip_serializing)]
        key: Option<String>,
    },
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        #[serde(default, skip_serializing)]
        client_secret: Option<String>,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
    /// Requests are signed with the gateway's own AWS identity; nothing secret is stored.
    AwsSigv4 {
        /// Signing name, e.g. `bedrock-agentcore`.
        service: String,
        region: String,
        /// A role the gateway assumes before signing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<String>,
    },
}

/// What a client sends to register or replace a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Required on create; on update it may be given but must match the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub endpoint: EndpointSpec,
    #[serde(default)]
    pub upstream_auth: UpstreamAuthSpec,
    /// Extra headers sent upstream; values are sealed at rest and never returned.
    /// Omit to keep the stored headers; `{}` removes them.
    #[serde(default, skip_serializing)]
    pub custom_headers: Option<BTreeMap<String, String>>,
    pub governance: Governance,
    #[serde(default)]
    pub gateway: GatewaySettings,
}

/// Limits that apply to a spec.
pub mod limits {
    pub const NAME: usize = 128;
    pub const DESCRIPTION: usize = 4096;
    pub const TAGS: usize = 32;
    pub const TAG: usize = 64;
    pub const HEADERS: usize = 32;
    pub const HEADER_VALUE: usize = 4096;
    pub const ARGS: usize = 64;
    pub const ARG: usize = 1024;
    pub const ENV: usize = 64;
    pub const ENV_VALUE: usize = 8192;
    pub const SECRET: usize = 8192;
    pub const REASON: usize = 1024;
    pub const TOOL_LIMITS: usize = 256;
}

/// Headers the platform itself sets or interprets, which a server's custom headers must
/// never carry: credentials and identity (`authorization`, `cookie`, the caller assertion),
/// hop-by-hop and framing headers, MCP's session and routing headers, and the request id and
/// trace context the gateway propagates. Refused at registration, and filtered out again by
/// everything that sends custom headers (the registry's probes, gateways), so a record stored
/// before this rule, or altered in the database, cannot smuggle one.
const PLATFORM_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "accept",
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "forwarded",
    "via",
    "x-real-ip",
];

/// Name prefixes of platform headers: the platform's own (`x-mcpgw-*`, e.g. the caller
/// assertion `x-mcpgw-caller`), MCP's per-parameter headers, proxy and forwarding headers.
const PLATFORM_HEADER_PREFIXES: &[&str] = &["x-mcpgw-", "mcp-param-", "proxy-", "x-forwarded-"];

/// Whether `name` (any case) is a header the platform sets or interprets, so it is never a
/// server's custom header (see [`PLATFORM_HEADERS`]).
pub fn is_platform_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    PLATFORM_HEADERS.contains(&lower.as_str())
        || PLATFORM_HEADER_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
}

/// A spec that passed every check that needs no network.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    pub path: Option<ServerPath>,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub endpoint: EndpointSpec,
    pub upstream_auth: UpstreamAuthSpec,
    pub custom_headers: Option<BTreeMap<String, String>>,
    pub governance: Governance,
    pub gateway: GatewaySettings,
}

impl ValidSpec {
    /// The URLs the egress policy must approve, with their field names.
    pub fn urls_to_check(&self) -> Vec<(String, String)> {
        let mut urls = Vec::new();
        match &self.endpoint {
            EndpointSpec::StreamableHttp { url } | EndpointSpec::Sse { url } => {
                urls.push(("endpoint.url".to_owned(), url.clone()));
            }
            EndpointSpec::Stdio { .. } => {}
        }
        if let UpstreamAuthSpec::Oauth2ClientCredentials { token_url, .. } = &self.upstream_auth {
            urls.push(("upstream_auth.token_url".to_owned(), token_url.clone()));
        }
        if let Some(h) = &self.governance.health_check_endpoint {
            urls.push(("governance.health_check_endpoint".to_owned(), h.clone()));
        }
        urls
    }

    pub fn is_stdio(&self) -> bool {
        matches!(self.endpoint, EndpointSpec::Stdio { .. })
    }
}

fn secret(field: &str, value: &Option<String>) -> Result<Option<String>, FieldError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(FieldError::new(field, "must not be empty")),
        Some(v) if v.len() > limits::SECRET => Err(FieldError::new(
            field,
            format!("must be at most {} bytes", limits::SECRET),
        )),
        Some(v) if v.bytes().any(|b| b.is_ascii_control()) => Err(FieldError::new(
            field,
            "must not contain control characters",
        )),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn header_name(field: &str, name: &str) -> Result<String, FieldError> {
    let lower = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 128
        || http::HeaderName::from_bytes(lower.as_bytes()).is_err()
    {
        return Err(FieldError::new(
            field,
            format!("{name:?} is not a valid HTTP header name"),
        ));
    }
    if is_platform_header(&lower) {
        return Err(FieldError::new(
            field,
            format!(
                "{name:?} is a header the platform sets or interprets itself (credentials, caller identity, hop-by-hop, framing, MCP session or routing, tracing); it cannot be set per server: use upstream_auth for credentials, or choose another header name"
            ),
        ));
    }
    Ok(lower)
}

fn header_value(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() > limits::HEADER_VALUE {
        return Err(FieldError::new(
            field,
            format!("must be at most {} bytes", limits::HEADER_VALUE),
        ));
    }
    if http::HeaderValue::from_str(value).is_err() || value.bytes().any(|b| b.is_ascii_control()) {
        return Err(FieldError::new(field, "is not a valid HTTP header value"));
    }
    Ok(())
}

impl ServerSpec {
    /// Runs every check that needs no network and normalizes the values.
    pub fn validate(&self) -> Result<ValidSpec, FieldError> {
        let path = spec_path(self.path.as_deref())?;
        let name = validate::text("name", &self.name, 1, limits::NAME)?;
        let description = validate::text("description", &self.description, 0, limits::DESCRIPTION)?;
        let tags = spec_tags(&self.tags)?;
        let endpoint = self.validate_endpoint()?;
        let upstream_auth = self.validate_auth()?;
        let custom_headers = match &self.custom_headers {
            None => None,
            Some(map) => {
                if map.len() > limits::HEADERS {
                    return Err(FieldError::new(
                        "custom_headers",
                        format!("at most {} headers are allowed", limits::HEADERS),
                    ));
                }
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    let field = format!("custom_headers.{k}");
                    let name = header_name(&field, k)?;
                    header_value(&field, v)?;
                    if let UpstreamAuthSpec::ApiKey { header, .. } = &upstream_auth
                        && header.eq_ignore_ascii_case(&name)
                    {
                        return Err(FieldError::new(
                            field,
                            "is already set by upstream_auth (api_key header)",
                        ));
                    }
                    if out.insert(name, v.clone()).is_some() {
                        return Err(FieldError::new(
                            field,
                            "is given twice (header names ignore case)",
                        ));
                    }
                }
                Some(out)
            }
        };
        let governance = self.governance.validate()?;
        let gateway = self.gateway.validate()?;
        if gateway.assert_caller && !matches!(endpoint, EndpointSpec::StreamableHttp { .. }) {
            return Err(FieldError::new(
                "gateway.assert_caller",
                "needs a streamable-http endpoint: shared upstreams (stdio, sse) have no single caller",
            ));
        }
        Ok(ValidSpec {
            path,
            name,
            description,
            tags,
            endpoint,
            upstream_auth,
            custom_headers,
            governance,
            gateway,
        })
    }

    fn validate_endpoint(&self) -> Result<EndpointSpec, FieldError> {
        Ok(match &self.endpoint {
            EndpointSpec::StreamableHttp { url } => EndpointSpec::StreamableHttp {
                url: web_url("endpoint.url", url.trim())?.to_string(),
            },
            EndpointSpec::Sse { url } => EndpointSpec::Sse {
                url: web_url("endpoint.url", url.trim())?.to_string(),
            },
            EndpointSpec::Stdio { command, args, env } => {
                let command = validate::text("endpoint.command", command, 1, 256)?;
                let args = validate::list("endpoint.args", args, limits::ARGS, |f, a| {
                    if a.len() > limits::ARG || a.contains('\0') {
                        Err(FieldError::new(
                            f,
                            format!("must be at most {} bytes without NUL", limits::ARG),
                        ))
                    } else {
                        Ok(a.clone())
                    }
                })?;
                let env = match env {
                    None => None,
                    Some(map) => {
                        if map.len() > limits::ENV {
                            return Err(FieldError::new(
                                "endpoint.env",
                                format!("at most {} variables are allowed", limits::ENV),
                            ));
                        }
                        for (k, v) in map {
                            let field = format!("endpoint.env.{k}");
                            let ok_name = !k.is_empty()
                                && k.len() <= 128
                                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                                && !k.as_bytes()[0].is_ascii_digit();
                            if !ok_name {
                                return Err(FieldError::new(
                                    field,
                                    "is not a valid environment variable name",
                                ));
                            }
                            if v.len() > limits::ENV_VALUE || v.contains('\0') {
                                return Err(FieldError::new(
                                    field,
                                    format!(
                                        "must be at most {} bytes without NUL",
                                        limits::ENV_VALUE
                                    ),
                                ));
                            }
                        }
                        Some(map.clone())
                    }
                };
                EndpointSpec::Stdio { command, args, env }
            }
        })
    }

    fn validate_auth(&self) -> Result<UpstreamAuthSpec, FieldError> {
        Ok(match &self.upstream_auth {
            UpstreamAuthSpec::None => UpstreamAuthSpec::None,
            UpstreamAuthSpec::Bearer { token } => UpstreamAuthSpec::Bearer {
                token: secret("upstream_auth.token", token)?,
            },
            UpstreamAuthSpec::ApiKey { header, key } => UpstreamAuthSpec::ApiKey {
                header: header_name("upstream_auth.header", header)?,
                key: secret("upstream_auth.key", key)?,
            },
            UpstreamAuthSpec::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            } => UpstreamAuthSpec::Oauth2ClientCredentials {
                token_url: web_url("upstream_auth.token_url", token_url.trim())?.to_string(),
                client_id: validate::text("upstream_auth.client_id", client_id, 1, 256)?,
                client_secret: secret("upstream_auth.client_secret", client_secret)?,
                scopes: validate::list("upstream_auth.scopes", scopes, 32, |f, s| {
                    validate::text(f, s, 1, 256).and_then(|s| {
                        if s.contains(' ') {
                            Err(FieldError::new(f, "must not contain spaces"))
                        } else {
                            Ok(s)
                        }
                    })
                })?,
                audience: validate::optional_text(
                    "upstream_auth.audience",
                    audience.as_deref(),
                    512,
                )?,
            },
            UpstreamAuthSpec::AwsSigv4 {
                service,
                region,
                role_arn,
            } => UpstreamAuthSpec::AwsSigv4 {
                service: validate::identifier("upstream_auth.service", service, 64, "-_.")?,
                region: validate::identifier("upstream_auth.region", region, 32, "-")?,
                role_arn: match validate::optional_text(
                    "upstream_auth.role_arn",
                    role_arn.as_deref(),
                    2048,
                )? {
                    Some(arn) if !arn.starts_with("arn:") => {
                        return Err(FieldError::new(
                            "upstream_auth.role_arn",
                            "must be an IAM role ARN (arn:aws:iam::…:role/…)",
                        ));
                    }
                    other => other,
                },
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The stored shapes

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "kebab-case")]
pub enum Endpoint {
    StreamableHttp {
        url: String,
    },
    Sse {
        url: String,
    },
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, SealedSecret>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UpstreamAuth {
    None,
    Bearer {
        token: SealedSecret,
    },
    ApiKey {
        header: String,
        key: SealedSecret,
    },
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SealedSecret,
        scopes: Vec<String>,
        audience: Option<String>,
    },
    AwsSigv4 {
        service: String,
        region: String,
        role_arn: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    #[default]
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
    AuthFailed,
}

impl HealthStatus {
    /// The wire name (`auth_failed`, …), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
            Self::AuthFailed => "auth_failed",
        }
    }
}

/// A server's health as the registry's checks see it. `status` and `reason` are damped (they
/// change only after enough checks agree, see the registry's `health` settings); the
/// latest raw result is the first entry of `history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Consecutive latest results that disagree with `status` (all with the status of the
    /// newest one); the status changes when this reaches the damping threshold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disagreeing: u32,
    /// The latest checks, newest first (bounded; not included in server listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HealthCheck>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthCheck {
    pub at: Timestamp,
    pub status: HealthStatus,
    /// Why it is not healthy: `timeout`, `connection_refused`, `http_status 500`,
    /// `jsonrpc_error -32601 …`, `slow 2300 ms`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub latency_ms: u64,
    /// The protocol version the server spoke, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `scheduled`, `manual`, or `gateway:<instance>` (a stdio server reported by that gateway).
    pub trigger: String,
}

/// A server as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub id: Uuid,
    pub path: ServerPath,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub endpoint: Endpoint,
    pub upstream_auth: UpstreamAuth,
    pub custom_headers: BTreeMap<String, SealedSecret>,
    pub governance: Governance,
    /// Records stored before this field existed read as the defaults.
    #[serde(default)]
    pub gateway: GatewaySettings,
    pub lifecycle: Lifecycle,
    pub lifecycle_history: Vec<LifecycleEvent>,
    pub enabled: bool,
    pub health: Health,
    pub tools: Vec<Tool>,
    /// The tool definitions last approved (none: never approved). Records stored before this
    /// field existed have none, so their tools need an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_tools: Option<ToolBaseline>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub updated_by: String,
    /// Starts at 1; every change adds 1. Updates name the revision they read (optimistic
    /// concurrency); a stale revision is refused.
    pub revision: u64,
}

/// Errors applying a spec to a record.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl ServerRecord {
    /// A new record in `draft`, from a validated spec whose path is set.
    pub fn create(
        spec: ValidSpec,
        keyring: &Keyring,
        actor: &str,
        enabled: bool,
    ) -> Result<Self, ApplyError> {
        let path = spec
            .path
            .clone()
            .ok_or_else(|| FieldError::new("path", "is required"))?;
        let now = Timestamp::now();
        let mut record = ServerRecord {
            id: Uuid::new_v4(),
            path,
            name: String::new(),
            description: String::new(),
            tags: Vec::new(),
            endpoint: Endpoint::StreamableHttp { url: String::new() },
            upstream_auth: UpstreamAuth::None,
            custom_headers: BTreeMap::new(),
            governance: spec.governance.clone(),
            gateway: spec.gateway.clone(),
            lifecycle: Lifecycle::Draft,
            lifecycle_history: Vec::new(),
            enabled,
            health: Health::default(),
            tools: Vec::new(),
            approved_tools: None,
            created_at: now,
            updated_at: now,
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
            revision: 1,
        };
        record.apply_spec(spec, keyring)?;
        Ok(record)
    }

    /// Replaces the writable fields with `spec`. Secrets the spec omits are kept when the
    /// credential kind is unchanged and the endpoint still goes to the same place (see
    /// [`ServerRecord::secret_context`]); otherwise they must be given again. A secret given
    /// with the value already stored keeps its sealed form, so only real changes show as
    /// changes (and send the server back to review, see [`review_reasons`]).
    pub fn apply_spec(&mut self, spec: ValidSpec, keyring: &Keyring) -> Result<(), ApplyError> {
        if let Some(path) = &spec.path
            && path != &self.path
        {
            return Err(FieldError::new(
                "path",
                format!(
                    "cannot be changed (this server is {:?}); register a new server instead",
                    self.path.as_str()
                ),
            )
            .into());
        }
        let old_binding = self.endpoint.credential_binding();
        let new_binding = spec.endpoint.credential_binding();
        let moved = old_binding != new_binding;
        let sealer = Sealer {
            id: self.id,
            keyring,
            old_binding: &old_binding,
            new_binding: &new_binding,
        };
        let endpoint = match spec.endpoint {
            EndpointSpec::StreamableHttp { url } => Endpoint::StreamableHttp { url },
            EndpointSpec::Sse { url } => Endpoint::Sse { url },
            EndpointSpec::Stdio { command, args, env } => {
                let old_env = match &self.endpoint {
                    Endpoint::Stdio { env, .. } => env.clone(),
                    _ => BTreeMap::new(),
                };
                let env = match env {
                    Some(map) => map
                        .into_iter()
                        .map(|(k, v)| {
                            let field = format!("endpoint.env.{k}");
                            let sealed = sealer.seal(&field, &v, old_env.get(&k));
                            (k, sealed)
                        })
                        .collect(),
                    None if moved && !old_env.is_empty() => {
                        return Err(moved_error("endpoint.env", &old_binding, &new_binding).into());
                    }
                    None => old_env,
                };
                Endpoint::Stdio { command, args, env }
            }
        };
        let upstream_auth = self.resolve_auth(spec.upstream_auth, &sealer)?;
        let custom_headers = match spec.custom_headers {
            Some(headers) => headers
                .into_iter()
                .map(|(k, v)| {
                    let field = format!("custom_headers.{k}");
                    let sealed = sealer.seal(&field, &v, self.custom_headers.get(&k));
                    (k, sealed)
                })
                .collect(),
            None if moved && !self.custom_headers.is_empty() => {
                return Err(moved_error("custom_headers", &old_binding, &new_binding).into());
            }
            None => self.custom_headers.clone(),
        };
        self.endpoint = endpoint;
        self.upstream_auth = upstream_auth;
        self.custom_headers = custom_headers;
        self.name = spec.name;
        self.description = spec.description;
        self.tags = spec.tags;
        self.governance = spec.governance;
        self.gateway = spec.gateway;
        Ok(())
    }

    fn resolve_auth(
        &self,
        spec: UpstreamAuthSpec,
        sealer: &Sealer<'_>,
    ) -> Result<UpstreamAuth, FieldError> {
        // `kept`: the stored secret of the same kind, and the token URL it was bound to.
        let seal_or_keep = |field: &str,
                            given: Option<String>,
                            kept: Option<&SealedSecret>,
                            token_urls: (Option<&str>, Option<&str>)|
         -> Result<SealedSecret, FieldError> {
            let old_ctx = secret_context_of(sealer.id, sealer.old_binding, field, token_urls.0);
            let new_ctx = secret_context_of(sealer.id, sealer.new_binding, field, token_urls.1);
            match (given, kept) {
                (Some(plain), kept) => Ok(sealer.seal_with(&old_ctx, &new_ctx, &plain, kept)),
                (None, Some(sealed)) if old_ctx == new_ctx => Ok(sealed.clone()),
                (None, Some(_)) => Err(moved_error(
                    field,
                    &describe_binding(sealer.old_binding, token_urls.0),
                    &describe_binding(sealer.new_binding, token_urls.1),
                )),
                (None, None) => Err(FieldError::new(
                    field,
                    "is required (it can be omitted only to keep a stored value of the same kind)",
                )),
            }
        };
        Ok(match spec {
            UpstreamAuthSpec::None => UpstreamAuth::None,
            UpstreamAuthSpec::Bearer { token } => {
                let kept = match &self.upstream_auth {
                    UpstreamAuth::Bearer { token } => Some(token),
                    _ => None,
                };
                UpstreamAuth::Bearer {
                    token: seal_or_keep("upstream_auth.token", token, kept, (None, None))?,
                }
            }
            UpstreamAuthSpec::ApiKey { header, key } => {
                let kept = match &self.upstream_auth {
                    UpstreamAuth::ApiKey { key, .. } => Some(key),
                    _ => None,
                };
                UpstreamAuth::ApiKey {
                    key: seal_or_keep("upstream_auth.key", key, kept, (None, None))?,
                    header,
                }
            }
            UpstreamAuthSpec::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            } => {
                let (kept, old_token_url) = match &self.upstream_auth {
                    UpstreamAuth::Oauth2ClientCredentials {
                        client_secret,
                        client_id: old_id,
                        token_url: old_url,
                        ..
                    } if *old_id == client_id => (Some(client_secret), Some(old_url.as_str())),
                    _ => (None, None),
                };
                UpstreamAuth::Oauth2ClientCredentials {
                    client_secret: seal_or_keep(
                        "upstream_auth.client_secret",
                        client_secret,
                        kept,
                        (old_token_url, Some(&token_url)),
                    )?,
                    token_url,
                    client_id,
                    scopes,
                    audience,
                }
            }
            UpstreamAuthSpec::AwsSigv4 {
                service,
                region,
                role_arn,
            } => UpstreamAuth::AwsSigv4 {
                service,
                region,
                role_arn,
            },
        })
    }

    /// Re-seals values sealed before credentials were bound to their endpoint (bound to the
    /// record and field only) for the endpoint the record has now; returns how many. The
    /// registry runs this once per record at start: only then is the old context ever
    /// accepted, so a record whose endpoint is changed later (through the API, or in the
    /// database) cannot take an old credential along. Values that open neither way are left
    /// as they are (gateways report them as not opening).
    pub fn rebind_legacy_secrets(&mut self, keyring: &Keyring) -> usize {
        let id = self.id;
        let rebind = |ctx: String, field: &str, sealed: &mut SealedSecret| -> usize {
            if keyring.open(&ctx, sealed).is_ok() {
                return 0;
            }
            match keyring.open(&Self::legacy_secret_context(id, field), sealed) {
                Ok(plain) => {
                    *sealed = keyring.seal(&ctx, plain.expose_secret());
                    1
                }
                Err(_) => 0,
            }
        };
        let mut count = 0;
        let auth_field = match &self.upstream_auth {
            UpstreamAuth::Bearer { .. } => Some(crate::upstream_auth::fields::TOKEN),
            UpstreamAuth::ApiKey { .. } => Some(crate::upstream_auth::fields::KEY),
            UpstreamAuth::Oauth2ClientCredentials { .. } => {
                Some(crate::upstream_auth::fields::CLIENT_SECRET)
            }
            UpstreamAuth::None | UpstreamAuth::AwsSigv4 { .. } => None,
        };
        if let Some(field) = auth_field {
            let ctx = self.secret_context(field);
            match &mut self.upstream_auth {
                UpstreamAuth::Bearer { token: sealed }
                | UpstreamAuth::ApiKey { key: sealed, .. }
                | UpstreamAuth::Oauth2ClientCredentials {
                    client_secret: sealed,
                    ..
                } => count += rebind(ctx, field, sealed),
                UpstreamAuth::None | UpstreamAuth::AwsSigv4 { .. } => {}
            }
        }
        let header_contexts: Vec<(String, String)> = self
            .custom_headers
            .keys()
            .map(|k| {
                let field = format!("custom_headers.{k}");
                (self.secret_context(&field), field)
            })
            .collect();
        for ((ctx, field), sealed) in header_contexts
            .into_iter()
            .zip(self.custom_headers.values_mut())
        {
            count += rebind(ctx, &field, sealed);
        }
        let binding = self.endpoint.credential_binding();
        if let Endpoint::Stdio { env, .. } = &mut self.endpoint {
            for (k, sealed) in env.iter_mut() {
                let field = format!("endpoint.env.{k}");
                let ctx = secret_context_of(id, &binding, &field, None);
                count += rebind(ctx, &field, sealed);
            }
        }
        count
    }

    /// The writable fields as a spec, without any secret (the base of a merge patch).
    pub fn to_spec(&self) -> ServerSpec {
        ServerSpec {
            path: Some(self.path.to_string()),
            name: self.name.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            endpoint: match &self.endpoint {
                Endpoint::StreamableHttp { url } => {
                    EndpointSpec::StreamableHttp { url: url.clone() }
                }
                Endpoint::Sse { url } => EndpointSpec::Sse { url: url.clone() },
                Endpoint::Stdio { command, args, .. } => EndpointSpec::Stdio {
                    command: command.clone(),
                    args: args.clone(),
                    env: None,
                },
            },
            upstream_auth: self.auth_view(),
            custom_headers: None,
            governance: self.governance.clone(),
            gateway: self.gateway.clone(),
        }
    }

    fn auth_view(&self) -> UpstreamAuthSpec {
        match &self.upstream_auth {
            UpstreamAuth::None => UpstreamAuthSpec::None,
            UpstreamAuth::Bearer { .. } => UpstreamAuthSpec::Bearer { token: None },
            UpstreamAuth::ApiKey { header, .. } => UpstreamAuthSpec::ApiKey {
                header: header.clone(),
                key: None,
            },
            UpstreamAuth::Oauth2ClientCredentials {
                token_url,
                client_id,
                scopes,
                audience,
                ..
            } => UpstreamAuthSpec::Oauth2ClientCredentials {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: None,
                scopes: scopes.clone(),
                audience: audience.clone(),
            },
            UpstreamAuth::AwsSigv4 {
                service,
                region,
                role_arn,
            } => UpstreamAuthSpec::AwsSigv4 {
                service: service.clone(),
                region: region.clone(),
                role_arn: role_arn.clone(),
            },
        }
    }

    /// Whether a gateway at `stage` routes this server.
    pub fn is_routable(&self, stage: DeploymentStage) -> bool {
        self.enabled && self.lifecycle.is_routable(stage)
    }

    /// Lowercased text the list filter `q` matches against.
    pub fn search_text(&self) -> String {
        format!(
            "{} {} {} {}",
            self.path,
            self.name,
            self.description,
            self.tags.join(" ")
        )
        .to_lowercase()
    }

    /// What a sealed value of this record is bound to (the AEAD associated data): the record,
    /// the field, and where the value may be sent, from the record's *current* endpoint (see
    /// [`secret_context`]). It opens for nothing else.
    pub fn secret_context(&self, field: &str) -> String {
        secret_context(self.id, &self.endpoint, &self.upstream_auth, field)
    }

    /// The context values were sealed with before they were bound to an endpoint (record and
    /// field only); read by [`ServerRecord::rebind_legacy_secrets`] and nothing else.
    pub fn legacy_secret_context(id: Uuid, field: &str) -> String {
        format!("server:{id}:{field}")
    }

    /// Opens a sealed credential of this record (for the gateway and health checker), bound
    /// to where the record's endpoint goes now.
    pub fn open_secret(
        &self,
        keyring: &Keyring,
        field: &str,
        sealed: &SealedSecret,
    ) -> Result<String, SecretError> {
        keyring
            .open(&self.secret_context(field), sealed)
            .map(|s| s.expose_secret().to_owned())
    }

    /// How the current tools differ from the approved ones.
    pub fn tool_changes(&self) -> Vec<ToolChange> {
        integrity::diff(self.approved_tools.as_ref(), &self.tools)
    }

    pub fn tools_status(&self) -> ToolsStatus {
        integrity::status(self.approved_tools.as_ref(), &self.tool_changes())
    }

    pub fn view(&self, stage: DeploymentStage) -> ServerView {
        let tool_changes = self.tool_changes();
        ServerView {
            id: self.id,
            path: self.path.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            endpoint: match &self.endpoint {
                Endpoint::StreamableHttp { url } => {
                    EndpointView::StreamableHttp { url: url.clone() }
                }
                Endpoint::Sse { url } => EndpointView::Sse { url: url.clone() },
                Endpoint::Stdio { command, args, env } => EndpointView::Stdio {
                    command: command.clone(),
                    args: args.clone(),
                    env_names: env.keys().cloned().collect(),
                },
            },
            upstream_auth: self.auth_view(),
            custom_header_names: self.custom_headers.keys().cloned().collect(),
            governance: self.governance.clone(),
            gateway: self.gateway.clone(),
            lifecycle: self.lifecycle,
            next_lifecycle_states: self.lifecycle.next_states(),
            lifecycle_history: self.lifecycle_history.clone(),
            enabled: self.enabled,
            routable: self.is_routable(stage),
            health: Health {
                history: Vec::new(),
                ..self.health.clone()
            },
            tool_count: self.tools.len(),
            tools: self.tools.clone(),
            tools_status: integrity::status(self.approved_tools.as_ref(), &tool_changes),
            tool_changes,
            approved_tools: self.approved_tools.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
            revision: self.revision,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where credentials may go, and which changes need a new review

/// The origin (`scheme://host[:port]`) of an endpoint URL: what an HTTP credential is bound
/// to. Browsers draw the same line; a path on the same origin is the same party.
fn origin_of(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => format!("unparsable:{url}"),
    }
}

/// What the environment of a stdio server is bound to: the program and its arguments (another
/// command, or the same launcher with other arguments, is another party).
fn stdio_binding(command: &str, args: &[String]) -> String {
    let argv = serde_json::to_string(&(command, args)).unwrap_or_default();
    format!("stdio:{argv}")
}

impl Endpoint {
    /// Where the credentials of this endpoint are sent: the URL's origin, or the stdio
    /// command line. Sealed values are bound to it (see [`secret_context`]).
    pub fn credential_binding(&self) -> String {
        match self {
            Endpoint::StreamableHttp { url } | Endpoint::Sse { url } => origin_of(url),
            Endpoint::Stdio { command, args, .. } => stdio_binding(command, args),
        }
    }
}

impl EndpointSpec {
    /// [`Endpoint::credential_binding`] of the endpoint this spec describes.
    pub fn credential_binding(&self) -> String {
        match self {
            EndpointSpec::StreamableHttp { url } | EndpointSpec::Sse { url } => origin_of(url),
            EndpointSpec::Stdio { command, args, .. } => stdio_binding(command, args),
        }
    }
}

/// The associated data a sealed value of server `id` is sealed with:
/// `server:<id>:<field>@<binding>`, where the binding is where the value goes — the endpoint's
/// origin (or stdio command line), and for an OAuth client secret also the token URL's origin.
/// A value therefore opens only for the record, field and destination it was given for:
/// gateways and the registry open with the record's current endpoint, so a record altered to
/// point elsewhere (through the API, or in the database) cannot send an old credential there.
pub fn secret_context(id: Uuid, endpoint: &Endpoint, auth: &UpstreamAuth, field: &str) -> String {
    let token_url = match auth {
        UpstreamAuth::Oauth2ClientCredentials { token_url, .. } => Some(token_url.as_str()),
        _ => None,
    };
    secret_context_of(id, &endpoint.credential_binding(), field, token_url)
}

fn secret_context_of(id: Uuid, binding: &str, field: &str, token_url: Option<&str>) -> String {
    format!(
        "server:{id}:{field}@{}",
        describe_binding(binding, token_url)
    )
}

fn describe_binding(binding: &str, token_url: Option<&str>) -> String {
    match token_url {
        Some(t) => format!("{binding} (token URL {})", origin_of(t)),
        None => binding.to_owned(),
    }
}

fn moved_error(field: &str, from: &str, to: &str) -> FieldError {
    FieldError::new(
        field,
        format!(
            "must be given again: the endpoint moves from {from} to {to}, and a stored credential is never carried to another destination (send the value for the new endpoint, or remove it)"
        ),
    )
}

/// Seals the values of one `apply_spec`, bound to the new endpoint.
struct Sealer<'a> {
    id: Uuid,
    keyring: &'a Keyring,
    old_binding: &'a str,
    new_binding: &'a str,
}

impl Sealer<'_> {
    /// Seals `plain` for `field` of a map (custom headers, stdio env), keeping `kept` when it
    /// holds the same value for the same destination.
    fn seal(&self, field: &str, plain: &str, kept: Option<&SealedSecret>) -> SealedSecret {
        let old_ctx = secret_context_of(self.id, self.old_binding, field, None);
        let new_ctx = secret_context_of(self.id, self.new_binding, field, None);
        self.seal_with(&old_ctx, &new_ctx, plain, kept)
    }

    fn seal_with(
        &self,
        old_ctx: &str,
        new_ctx: &str,
        plain: &str,
        kept: Option<&SealedSecret>,
    ) -> SealedSecret {
        if old_ctx == new_ctx
            && let Some(kept) = kept
            && self
                .keyring
                .open(old_ctx, kept)
                .is_ok_and(|old| old.expose_secret() == plain)
        {
            return kept.clone();
        }
        self.keyring.seal(new_ctx, plain)
    }
}

/// The changes from `before` to `after` that decide where callers' traffic, credentials or
/// identities go, by field name: a server past `draft` that changes any of them goes back to
/// review. Any change of the endpoint counts (a new path on the same origin is another
/// application as often as not: reverse proxies route by path); so does any change of the
/// credentials or custom headers (they can carry credentials), of `gateway.assert_caller`
/// (callers' identities go upstream) and `gateway.log_arguments` (callers' arguments go into
/// the audit log). Limits, write protection and tool integrity decide what callers may do at
/// the gateway, not where anything goes, and the policy still governs them: no review.
pub fn review_reasons(before: &ServerRecord, after: &ServerRecord) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    let (b, a) = (&before.gateway, &after.gateway);
    for (changed, name) in [
        (before.endpoint != after.endpoint, "endpoint"),
        (before.upstream_auth != after.upstream_auth, "upstream_auth"),
        (
            before.custom_headers != after.custom_headers,
            "custom_headers",
        ),
        (b.assert_caller != a.assert_caller, "gateway.assert_caller"),
        (b.log_arguments != a.log_arguments, "gateway.log_arguments"),
    ] {
        if changed {
            reasons.push(name);
        }
    }
    reasons
}

impl ServerRecord {
    /// Where this record's endpoint goes, for the audit trail: the URL's origin and path
    /// (without user info or query, which may carry secrets), or the stdio command line
    /// (environment values are never included).
    pub fn endpoint_summary(&self) -> String {
        match &self.endpoint {
            Endpoint::StreamableHttp { url } | Endpoint::Sse { url } => match Url::parse(url) {
                Ok(u) => format!("{}{}", u.origin().ascii_serialization(), u.path()),
                Err(_) => origin_of(url),
            },
            Endpoint::Stdio { command, args, .. } => stdio_binding(command, args),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The read shape

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "transport", rename_all = "kebab-case")]
pub enum EndpointView {
    StreamableHttp {
        url: String,
    },
    Sse {
        url: String,
    },
    Stdio {
        command: String,
        args: Vec<String>,
        /// Names of the environment variables set (values are never returned).
        env_names: Vec<String>,
    },
}

/// A server as clients read it: no credential, sealed or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: Uuid,
    pub path: ServerPath,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub endpoint: EndpointView,
    /// The credential kind and its non-secret settings.
    pub upstream_auth: UpstreamAuthSpec,
    /// Names of the custom headers sent upstream (values are never returned).
    pub custom_header_names: Vec<String>,
    pub governance: Governance,
    pub gateway: GatewaySettings,
    pub lifecycle: Lifecycle,
    /// States reachable in one transition (each needs its own permission).
    pub next_lifecycle_states: Vec<Lifecycle>,
    pub lifecycle_history: Vec<LifecycleEvent>,
    pub enabled: bool,
    /// Whether this deployment's gateways route the server now.
    pub routable: bool,
    pub health: Health,
    pub tool_count: usize,
    pub tools: Vec<Tool>,
    /// Whether the current tools are the approved ones (see `POST …/tools/approve`).
    pub tools_status: ToolsStatus,
    /// Tools that are new, changed or removed since the approval, with both hashes.
    pub tool_changes: Vec<ToolChange>,
    /// The approved definitions, to compare with `tools` when reviewing a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_tools: Option<ToolBaseline>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub updated_by: String,
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_status_names_are_the_serialized_ones() {
        use HealthStatus::*;
        for status in [Unknown, Healthy, Degraded, Unhealthy, AuthFailed] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    fn keyring() -> Keyring {
        Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap()
    }

    fn spec(extra: serde_json::Value) -> ServerSpec {
        let mut base = json!({
            "path": "weather",
            "name": "Weather",
            "endpoint": {"transport": "streamable-http", "url": "https://weather.example/mcp"},
            "governance": {"owner_team": "Platform"}
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn paths_follow_the_rules() {
        for ok in ["weather", "fin-info", "a1", "x-2-y"] {
            assert!(ServerPath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Weather",
            "1abc",
            "ab-",
            "a--b",
            "a_b",
            "a/b",
            "api",
            "mcp",
            "..",
            &"a".repeat(65),
        ] {
            assert!(ServerPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_sealed_kept_on_update_and_never_in_views() {
        let ring = keyring();
        let s = spec(json!({
            "upstream_auth": {"type": "bearer", "token": "tok-123"},
            "custom_headers": {"X-Tenant": "acme"}
        }));
        let mut rec = ServerRecord::create(s.validate().unwrap(), &ring, "alice", true).unwrap();
        let UpstreamAuth::Bearer { token } = &rec.upstream_auth else {
            panic!()
        };
        assert_eq!(
            rec.open_secret(&ring, "upstream_auth.token", token)
                .unwrap(),
            "tok-123"
        );
        let stored = serde_json::to_string(&rec).unwrap();
        assert!(!stored.contains("tok-123") && !stored.contains("acme"));
        let view = serde_json::to_string(&rec.view(DeploymentStage::NonProduction)).unwrap();
        assert!(
            !view.contains("tok-123") && !view.contains("ciphertext"),
            "{view}"
        );
        assert!(view.contains("x-tenant"));

        // An update that omits the token keeps it; one that changes the kind must give one.
        let mut update = rec.to_spec();
        update.name = "Weather 2".into();
        rec.apply_spec(update.validate().unwrap(), &ring).unwrap();
        let UpstreamAuth::Bearer { token } = &rec.upstream_auth else {
            panic!()
        };
        assert_eq!(
            rec.open_secret(&ring, "upstream_auth.token", token)
                .unwrap(),
            "tok-123"
        );
        assert_eq!(rec.custom_headers.len(), 1);
        let mut update = rec.to_spec();
        update.upstream_auth = UpstreamAuthSpec::ApiKey {
            header: "X-Key".into(),
            key: None,
        };
        let err = rec
            .apply_spec(update.validate().unwrap(), &ring)
            .unwrap_err();
        assert!(
            matches!(err, ApplyError::Field(ref f) if f.field == "upstream_auth.key"),
            "{err}"
        );
    }

    #[test]
    fn a_credential_opens_only_for_the_origin_it_was_given_for() {
        let ring = keyring();
        let s = spec(
            json!({"upstream_auth": {"type": "oauth2_client_credentials",
            "token_url": "https://idp.example/token", "client_id": "c", "client_secret": "s3"}}),
        );
        let rec = ServerRecord::create(s.validate().unwrap(), &ring, "alice", true).unwrap();
        let UpstreamAuth::Oauth2ClientCredentials { client_secret, .. } = &rec.upstream_auth else {
            panic!()
        };
        let field = "upstream_auth.client_secret";
        let mut moved = rec.clone();
        moved.endpoint = Endpoint::StreamableHttp {
            url: "https://weather.example/v2/mcp".into(),
        };
        assert_eq!(
            moved.open_secret(&ring, field, client_secret).unwrap(),
            "s3"
        );
        for url in [
            "https://evil.example/mcp",
            "http://weather.example/mcp",
            "https://weather.example:8443/mcp",
        ] {
            moved.endpoint = Endpoint::StreamableHttp { url: url.into() };
            assert!(
                moved.open_secret(&ring, field, client_secret).is_err(),
                "{url}"
            );
        }
        let mut other_idp = rec.clone();
        if let UpstreamAuth::Oauth2ClientCredentials { token_url, .. } =
            &mut other_idp.upstream_auth
        {
            *token_url = "https://evil.example/token".into();
        }
        assert!(other_idp.open_secret(&ring, field, client_secret).is_err());
        let legacy = ServerRecord::legacy_secret_context(rec.id, field);
        assert!(ring.open(&legacy, client_secret).is_err());
    }

    #[test]
    fn bad_specs_name_the_field() {
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"tags": ["ok", "Not OK"]}), "tags[1]"),
            (
                json!({"endpoint": {"transport": "sse", "url": "ftp://x/"}}),
                "endpoint.url",
            ),
            (
                json!({"custom_headers": {"Host": "x"}}),
                "custom_headers.Host",
            ),
            (
                json!({"custom_headers": {"X-A": "line\nbreak"}}),
                "custom_headers.X-A",
            ),
            (
                json!({"governance": {"owner_team": " "}}),
                "governance.owner_team",
            ),
            (
                json!({"governance": {"owner_team": "t", "required_scopes": ["Bad Scope"]}}),
                "governance.required_scopes[0]",
            ),
            (
                json!({"upstream_auth": {"type": "bearer", "token": ""}}),
                "upstream_auth.token",
            ),
            (
                json!({"upstream_auth": {"type": "aws_sigv4", "service": "s", "region": "us-east-1", "role_arn": "nope"}}),
                "upstream_auth.role_arn",
            ),
            (
                json!({"endpoint": {"transport": "stdio", "command": "uvx", "env": {"1BAD": "x"}}}),
                "endpoint.env.1BAD",
            ),
        ];
        for (extra, field) in cases {
            let err = spec(extra.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{extra}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<ServerSpec>(json!({
            "path": "w", "name": "W", "endpoint": {"transport": "sse", "url": "https://x/"},
            "governance": {"owner_team": "t"}, "enabeld": true
        }))
        .unwrap_err();
        assert!(err.to_string().contains("enabeld"), "{err}");
    }
}
