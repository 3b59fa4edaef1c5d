//! Who is calling, and what they may do.
//!
//! Handlers never look at credentials. An authenticator (API key today; JWTs and IdP groups
//! later) turns a request into a [`Principal`] carrying a set of [`Permission`]s, and handlers
//! only ask `principal.require(Permission::X)`. Adding a new kind of credential or a new
//! group → scope → permission mapping therefore changes the authenticators, not the handlers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One thing a caller may do in the registry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Permission {
    #[serde(rename = "servers:read")]
    ServersRead,
    #[serde(rename = "servers:create")]
    ServersCreate,
    #[serde(rename = "servers:update")]
    ServersUpdate,
    #[serde(rename = "servers:delete")]
    ServersDelete,
    #[serde(rename = "servers:toggle")]
    ServersToggle,
    /// Registering a stdio server makes the gateway run a command: kept apart from create.
    #[serde(rename = "servers:stdio")]
    ServersStdio,
    /// Set `gateway.assert_caller` on a server (gateways then send every caller's identity
    /// claims to it), or change the endpoint of a server that has it: kept apart from
    /// `servers:update`, because whoever holds it decides who receives callers' identities.
    #[serde(rename = "servers:assert_caller")]
    ServersAssertCaller,
    /// Change the registry's own record (`mcp.path`, created by the registry at start): it
    /// carries the `gateway:delegate` key. Without it every write to the record is refused,
    /// whatever else the caller holds.
    #[serde(rename = "servers:system")]
    ServersSystem,
    #[serde(rename = "lifecycle:submit")]
    LifecycleSubmit,
    #[serde(rename = "lifecycle:review")]
    LifecycleReview,
    #[serde(rename = "lifecycle:approve_prod")]
    LifecycleApproveProd,
    #[serde(rename = "lifecycle:deprecate")]
    LifecycleDeprecate,
    #[serde(rename = "lifecycle:retire")]
    LifecycleRetire,
    /// Approve a server's tool definitions (a baseline, or a change since). Kept apart from
    /// `servers:update`, so whoever can change a server's tools cannot approve them too.
    #[serde(rename = "tools:approve")]
    ToolsApprove,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "api_keys:manage")]
    ApiKeysManage,
    /// Read scope documents and check decisions.
    #[serde(rename = "policies:read")]
    PoliciesRead,
    /// Create, change, import and delete scope documents.
    #[serde(rename = "policies:write")]
    PoliciesWrite,
    /// What a gateway process needs: read the routing snapshot (sealed credentials included)
    /// and write audit events.
    #[serde(rename = "gateway:sync")]
    GatewaySync,
    /// Assert the identity of the caller a gateway verified ([`CallerAssertion`]): requests
    /// then run as that caller. Held by the credential gateways present to the registry's own
    /// MCP server; machines only.
    #[serde(rename = "gateway:delegate")]
    GatewayDelegate,
}

impl Permission {
    pub const ALL: [Permission; 20] = [
        Permission::ServersRead,
        Permission::ServersCreate,
        Permission::ServersUpdate,
        Permission::ServersDelete,
        Permission::ServersToggle,
        Permission::ServersStdio,
        Permission::ServersAssertCaller,
        Permission::ServersSystem,
        Permission::LifecycleSubmit,
        Permission::LifecycleReview,
        Permission::LifecycleApproveProd,
        Permission::LifecycleDeprecate,
        Permission::LifecycleRetire,
        Permission::ToolsApprove,
        Permission::AuditRead,
        Permission::ApiKeysManage,
        Permission::PoliciesRead,
        Permission::PoliciesWrite,
        Permission::GatewaySync,
        Permission::GatewayDelegate,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Permission::ServersRead => "servers:read",
            Permission::ServersCreate => "servers:create",
            Permission::ServersUpdate => "servers:update",
            Permission::ServersDelete => "servers:delete",
            Permission::ServersToggle => "servers:toggle",
            Permission::ServersStdio => "servers:stdio",
            Permission::ServersAssertCaller => "servers:assert_caller",
            Permission::ServersSystem => "servers:system",
            Permission::LifecycleSubmit => "lifecycle:submit",
            Permission::LifecycleReview => "lifecycle:review",
            Permission::LifecycleApproveProd => "lifecycle:approve_prod",
            Permission::LifecycleDeprecate => "lifecycle:deprecate",
            Permission::LifecycleRetire => "lifecycle:retire",
            Permission::ToolsApprove => "tools:approve",
            Permission::AuditRead => "audit:read",
            Permission::ApiKeysManage => "api_keys:manage",
            Permission::PoliciesRead => "policies:read",
            Permission::PoliciesWrite => "policies:write",
            Permission::GatewaySync => "gateway:sync",
            Permission::GatewayDelegate => "gateway:delegate",
        }
    }

    /// The UI actions of scope documents (`ui_permissions`) that grant this permission, in the
    /// anchor system's vocabulary plus one action per lifecycle step. `change_lifecycle_status`
    /// (the anchor's single lifecycle action) grants every step.
    pub fn ui_actions(&self) -> &'static [&'static str] {
        match self {
            Permission::ServersRead => &["list_service"],
            Permission::ServersCreate => &["register_service"],
            Permission::ServersUpdate => &["modify_service"],
            Permission::ServersDelete => &["delete_service"],
            Permission::ServersToggle => &["toggle_service"],
            Permission::ServersStdio => &["register_stdio_service"],
            Permission::ServersAssertCaller => &["assert_caller_service"],
            Permission::ServersSystem => &["manage_system_service"],
            Permission::LifecycleSubmit => &["submit_service", "change_lifecycle_status"],
            Permission::LifecycleReview => &["review_service", "change_lifecycle_status"],
            Permission::LifecycleApproveProd => {
                &["approve_prod_service", "change_lifecycle_status"]
            }
            Permission::LifecycleDeprecate => &["deprecate_service", "change_lifecycle_status"],
            Permission::LifecycleRetire => &["retire_service", "change_lifecycle_status"],
            Permission::ToolsApprove => &["approve_tools"],
            Permission::AuditRead => &["read_audit"],
            Permission::ApiKeysManage => &["manage_api_keys"],
            Permission::PoliciesRead => &["read_policies"],
            Permission::PoliciesWrite => &["manage_policies"],
            // Machines only: no scope document grants it to a person.
            Permission::GatewaySync | Permission::GatewayDelegate => &[],
        }
    }
}

impl Permission {
    /// Permissions no person and no admin key holds: only the registry mints a key with
    /// `gateway:delegate`, for its own record, so nobody can assert callers' identities to it
    /// (keys never grant more than their minter holds). `gateway:sync` stays with admins:
    /// setup and operators mint gateway keys with an admin key, and the sealed credentials
    /// it reads are useless without the sealing key.
    pub fn is_machine_only(&self) -> bool {
        matches!(self, Permission::GatewayDelegate)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown permission {s:?}; known: {}", known.join(", "))
            })
    }
}

/// Named bundles of permissions, so that keys and IdP groups can be granted a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything a person may hold: every permission except the machine-only
    /// `gateway:delegate` (see [`Permission::is_machine_only`]).
    Admin,
    /// Registers and edits servers and submits them for review.
    Publisher,
    /// Reviews submissions and approves them for dev and production, and approves tool changes.
    Reviewer,
    /// Enables, disables and deprecates servers; reads the audit log.
    Operator,
    /// Reads the catalog.
    Viewer,
}

impl Role {
    pub fn permissions(&self) -> BTreeSet<Permission> {
        use Permission::*;
        let list: &[Permission] = match self {
            Role::Admin => {
                return Permission::ALL
                    .into_iter()
                    .filter(|p| !p.is_machine_only())
                    .collect();
            }
            Role::Publisher => &[ServersRead, ServersCreate, ServersUpdate, LifecycleSubmit],
            Role::Reviewer => &[
                ServersRead,
                LifecycleReview,
                LifecycleApproveProd,
                ToolsApprove,
                AuditRead,
                PoliciesRead,
            ],
            Role::Operator => &[
                ServersRead,
                ServersToggle,
                LifecycleDeprecate,
                LifecycleRetire,
                AuditRead,
                PoliciesRead,
            ],
            Role::Viewer => &[ServersRead],
        };
        list.iter().copied().collect()
    }
}

/// What kind of credential a principal presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    ApiKey,
    User,
    Service,
    /// The service itself, e.g. the first-start bootstrap.
    System,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Principal {
    /// Stable identifier, e.g. `api_key:3f2a…` or the IdP subject.
    pub subject: String,
    /// Human-readable name for logs and the audit trail.
    pub display_name: String,
    pub kind: PrincipalKind,
    /// Permissions held for every resource.
    pub permissions: BTreeSet<Permission>,
    /// Permissions held only for the named servers (paths), from scope documents that grant a
    /// UI action on some servers rather than `all`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scoped: BTreeMap<Permission, BTreeSet<String>>,
    /// The IdP groups and scopes of a caller authenticated by token, for decisions the policy
    /// makes per tool (search hides tools the caller may not call). `None` for API keys and
    /// the system. Never serialized.
    #[serde(skip)]
    #[schema(ignore)]
    pub identity: Option<crate::policy::Identity>,
}

/// The caller lacks a permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this action needs the permission `{0}`, which the caller does not have")]
pub struct MissingPermission(pub Permission);

impl Principal {
    /// The principal used for work the service does on its own behalf.
    pub fn system(name: &str) -> Self {
        Self {
            subject: format!("system:{name}"),
            display_name: name.to_owned(),
            kind: PrincipalKind::System,
            permissions: Permission::ALL.into_iter().collect(),
            scoped: BTreeMap::new(),
            identity: None,
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn require(&self, permission: Permission) -> Result<(), MissingPermission> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(MissingPermission(permission))
        }
    }

    /// Whether the caller holds `permission` for the server at `path`.
    pub fn has_for(&self, permission: Permission, path: &str) -> bool {
        self.has(permission)
            || self
                .scoped
                .get(&permission)
                .is_some_and(|paths| paths.contains(path))
    }

    pub fn require_for(&self, permission: Permission, path: &str) -> Result<(), MissingPermission> {
        if self.has_for(permission, path) {
            Ok(())
        } else {
            Err(MissingPermission(permission))
        }
    }

    /// `None` when the caller holds `permission` everywhere; otherwise the servers it holds it
    /// for (possibly none).
    pub fn limited_to(&self, permission: Permission) -> Option<BTreeSet<String>> {
        if self.has(permission) {
            None
        } else {
            Some(self.scoped.get(&permission).cloned().unwrap_or_default())
        }
    }
}

/// The header a gateway adds to requests for a server whose `gateway.assert_caller` is set:
/// the caller it verified ([`CallerAssertion`], base64url of JSON). The registry acts on it only
/// when the request's own credential holds [`Permission::GatewayDelegate`]; gateways never pass
/// a client's header of this name on (they forward only listed headers) and set their own.
pub const CALLER_ASSERTION_HEADER: &str = "x-mcpgw-caller";
/// Largest encoded assertion accepted, in bytes.
pub const MAX_CALLER_ASSERTION_BYTES: usize = 16 * 1024;
/// Most groups, and most scopes, one assertion carries.
const MAX_ASSERTED_CLAIMS: usize = 256;
/// Longest subject, issuer, name, group or scope in an assertion.
const MAX_ASSERTED_TEXT: usize = 512;

/// Who a gateway verified: the claims of the caller's access token that decide what the caller
/// may do (the same ones the registry reads from a token it verifies itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerAssertion {
    pub issuer: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl CallerAssertion {
    /// The header value.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::to_vec(self).expect("an assertion serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses and checks a header value; the error names the part that is wrong.
    pub fn decode(value: &str) -> Result<Self, crate::validate::FieldError> {
        use crate::validate::FieldError;
        use base64::Engine;
        let field = |part: &str| format!("{CALLER_ASSERTION_HEADER}{part}");
        if value.len() > MAX_CALLER_ASSERTION_BYTES {
            return Err(FieldError::new(
                field(""),
                format!("must be at most {MAX_CALLER_ASSERTION_BYTES} bytes"),
            ));
        }
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .map_err(|_| FieldError::new(field(""), "must be base64url (no padding) of JSON"))?;
        let a: Self = serde_json::from_slice(&json)
            .map_err(|e| FieldError::new(field(""), format!("is not a caller assertion: {e}")))?;
        let check = |part: &str, v: &str| {
            if v.is_empty() || v.len() > MAX_ASSERTED_TEXT || v.chars().any(char::is_control) {
                Err(FieldError::new(
                    field(part),
                    format!("must be 1–{MAX_ASSERTED_TEXT} characters without control characters"),
                ))
            } else {
                Ok(())
            }
        };
        check(".issuer", &a.issuer)?;
        check(".subject", &a.subject)?;
        for (part, v) in [(".username", &a.username), (".client_id", &a.client_id)] {
            if let Some(v) = v {
                check(part, v)?;
            }
        }
        for (part, list) in [(".groups", &a.groups), (".scopes", &a.scopes)] {
            if list.len() > MAX_ASSERTED_CLAIMS {
                return Err(FieldError::new(
                    field(part),
                    format!("must have at most {MAX_ASSERTED_CLAIMS} entries"),
                ));
            }
            for v in list {
                check(part, v)?;
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert!("servers:everything".parse::<Permission>().is_err());
    }

    #[test]
    fn caller_assertions_round_trip_and_bad_ones_name_the_part() {
        let a = CallerAssertion {
            issuer: "https://idp".into(),
            subject: "alice".into(),
            username: Some("alice".into()),
            client_id: None,
            groups: vec!["team-a".into()],
            scopes: vec!["registry-read".into()],
        };
        assert_eq!(CallerAssertion::decode(&a.encode()).unwrap(), a);
        assert_eq!(
            CallerAssertion::decode("not base64!").unwrap_err().field,
            "x-mcpgw-caller"
        );
        let empty = CallerAssertion {
            subject: String::new(),
            ..a.clone()
        };
        assert_eq!(
            CallerAssertion::decode(&empty.encode()).unwrap_err().field,
            "x-mcpgw-caller.subject"
        );
        let many = CallerAssertion {
            groups: vec!["g".into(); 300],
            ..a
        };
        assert_eq!(
            CallerAssertion::decode(&many.encode()).unwrap_err().field,
            "x-mcpgw-caller.groups"
        );
    }

    #[test]
    fn a_viewer_cannot_create() {
        let p = Principal {
            subject: "u".into(),
            display_name: "u".into(),
            kind: PrincipalKind::User,
            permissions: Role::Viewer.permissions(),
            scoped: BTreeMap::from([(
                Permission::ServersToggle,
                BTreeSet::from(["weather".to_owned()]),
            )]),
            identity: None,
        };
        assert!(p.has_for(Permission::ServersToggle, "weather"));
        assert!(!p.has_for(Permission::ServersToggle, "finance"));
        assert_eq!(p.limited_to(Permission::ServersRead), None);
        assert_eq!(
            p.limited_to(Permission::ServersDelete),
            Some(BTreeSet::new())
        );
        assert!(p.require(Permission::ServersRead).is_ok());
        assert_eq!(
            p.require(Permission::ServersCreate),
            Err(MissingPermission(Permission::ServersCreate))
        );
    }
}
