//! Scope documents: the stored, user-editable form of the policy.
//!
//! One document per scope, in the anchor system's format so that its users can bring their files:
//!
//! ```json
//! {"name": "lob1", "group_mappings": ["registry-users-lob1"],
//!  "server_access": [{"server": "currenttime", "methods": ["initialize", "tools/list", "tools/call"],
//!                     "tools": ["current_time_by_timezone"]}],
//!  "ui_permissions": {"list_service": ["currenttime"]}}
//! ```
//!
//! Rules of this module:
//! - A [`ScopeDocument`] is valid by construction: every way in ([`ScopeDocument::from_value`],
//!   [`ScopeDocument::new`], serde) runs the same checks and names the field at fault with its
//!   path (`server_access[3].methods[0]`).
//! - Reading is lenient where the anchor's files are loose and strict where a mistake would
//!   grant access: `_id` is accepted for `name`, `tools`/`methods` may be one string (`"*"`),
//!   entries without `server` (the anchor's `{"agents": {...}}`) are kept as opaque entries, and
//!   unknown keys are dropped with a [`PolicyNote`]. Wrong types, oversized lists and bad names are
//!   errors.
//! - Things that are legal but probably not what the author meant (a rule that grants nothing,
//!   tools listed without `tools/call`) are reported by [`ScopeDocument::lint`], never refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::ServerPath;
use crate::validate::FieldError;

/// Size limits of a scope document. Every list and name is bounded so that one document cannot
/// make the registry or a gateway allocate without bound.
pub mod limits {
    /// Longest scope name, in bytes (scope names are ASCII).
    pub const SCOPE_NAME: usize = 128;
    /// Longest IdP group name, in characters (Keycloak full paths and Entra object ids fit).
    pub const GROUP_NAME: usize = 256;
    /// Most groups one document maps.
    pub const GROUPS_PER_DOCUMENT: usize = 1_000;
    /// Most `server_access` entries in one document.
    pub const RULES_PER_DOCUMENT: usize = 1_000;
    /// Longest `server` value, in characters.
    pub const SERVER_NAME: usize = 256;
    /// Longest JSON-RPC method name, in characters.
    pub const METHOD_NAME: usize = 128;
    /// Most methods in one rule.
    pub const METHODS_PER_RULE: usize = 256;
    /// Longest tool name, in characters (the MCP limit).
    pub const TOOL_NAME: usize = 128;
    /// Most tools in one rule.
    pub const TOOLS_PER_RULE: usize = 1_000;
    /// Most UI actions in one document.
    pub const UI_ACTIONS: usize = 100;
    /// Longest UI action name, in characters.
    pub const UI_ACTION_NAME: usize = 64;
    /// Most resources per UI action.
    pub const RESOURCES_PER_ACTION: usize = 1_000;
    /// Longest UI resource, in characters.
    pub const RESOURCE_NAME: usize = 256;
    /// Largest opaque `server_access` entry, serialized.
    pub const OPAQUE_ENTRY_BYTES: usize = 64 * 1024;
}

/// `*` and `all` both mean "any" in `methods`, `tools` and UI resources.
pub fn is_wildcard(value: &str) -> bool {
    value == "*" || value == "all"
}

/// The JSON-RPC method whose tool is checked against `tools`.
pub const TOOLS_CALL: &str = "tools/call";

/// UI actions the registry knows (servers, lifecycle, agents, virtual servers). Other names are
/// accepted and kept; [`ScopeDocument::lint`] reports them, since they are usually typos.
pub const UI_ACTIONS: &[&str] = &[
    "list_service",
    "register_service",
    "modify_service",
    "toggle_service",
    "delete_service",
    "health_check_service",
    "change_lifecycle_status",
    "list_agents",
    "get_agent",
    "publish_agent",
    "modify_agent",
    "delete_agent",
    "list_virtual_server",
    "create_virtual_server",
    "modify_virtual_server",
    "delete_virtual_server",
];

/// Something accepted but worth telling the author: a dropped key, a rule that can never match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyNote {
    /// The path of the field concerned, e.g. `[2].server_access[0]`.
    pub field: String,
    pub message: String,
}

impl PolicyNote {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the path, like [`FieldError::within`].
    pub fn within(self, parent: &str) -> Self {
        let FieldError { field, message } =
            FieldError::new(self.field, self.message).within(parent);
        Self { field, message }
    }
}

impl fmt::Display for PolicyNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Which servers, methods and tools one rule grants.
///
/// `server` is matched after trimming slashes (`/weather/` names `weather`); `*` matches every
/// server. `methods` and `tools` hold names or the wildcards `*`/`all`. `allow_write` adds, on
/// servers with write protection on (`gateway.read_only`), the tools not annotated
/// `readOnlyHint: true`, among those the rule lets through `tools/call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServerRule {
    server: String,
    methods: Vec<String>,
    tools: Vec<String>,
    /// On write-protected servers, also grant the tools this rule allows that are not
    /// annotated `readOnlyHint: true`. Written only when true, so documents without it
    /// round-trip unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    allow_write: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl ServerRule {
    /// Checks and builds a rule, without `allow_write` (see [`ServerRule::with_allow_write`]);
    /// errors name `server`, `methods[i]` or `tools[i]`.
    pub fn new(
        server: impl Into<String>,
        methods: Vec<String>,
        tools: Vec<String>,
    ) -> Result<Self, FieldError> {
        let server = server.into();
        check_server("server", &server)?;
        check_list("methods", &methods, limits::METHODS_PER_RULE, |f, m| {
            check_text(f, m, limits::METHOD_NAME)
        })?;
        check_list("tools", &tools, limits::TOOLS_PER_RULE, |f, t| {
            check_text(f, t, limits::TOOL_NAME)
        })?;
        Ok(Self {
            server,
            methods,
            tools,
            allow_write: false,
        })
    }

    /// Sets `allow_write`: on write-protected servers, the tools this rule lets through
    /// `tools/call` are granted even when not annotated `readOnlyHint: true`.
    pub fn with_allow_write(mut self, allow_write: bool) -> Self {
        self.allow_write = allow_write;
        self
    }

    /// The server as written (slashes included).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server as matched: slashes trimmed; `*` for every server.
    pub fn server_key(&self) -> &str {
        normalize_server(&self.server)
    }

    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    pub fn tools(&self) -> &[String] {
        &self.tools
    }

    /// Whether the rule also grants tools not annotated `readOnlyHint: true` on write-protected
    /// servers.
    pub fn allow_write(&self) -> bool {
        self.allow_write
    }

    pub fn any_method(&self) -> bool {
        self.methods.iter().any(|m| is_wildcard(m))
    }

    pub fn any_tool(&self) -> bool {
        self.tools.iter().any(|t| is_wildcard(t))
    }

    /// Whether this rule lets `tools/call` through at all (its tools are then checked).
    pub fn permits_tools_call(&self) -> bool {
        self.any_method() || self.methods.iter().any(|m| m == TOOLS_CALL)
    }
}

/// Trims slashes, the way rules and request paths are compared (`/weather/` → `weather`).
pub fn normalize_server(server: &str) -> &str {
    server.trim_matches('/')
}

/// One entry of `server_access`.
///
/// The anchor system also stores entries that are not server rules (`{"agents": {"actions":
/// [...]}}`). They are kept as they are, so a document survives a round trip, but mcpgw does not
/// evaluate them: they grant nothing here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AccessEntry {
    Rule(ServerRule),
    Opaque(Map<String, Value>),
}

impl AccessEntry {
    pub fn as_rule(&self) -> Option<&ServerRule> {
        match self {
            AccessEntry::Rule(r) => Some(r),
            AccessEntry::Opaque(_) => None,
        }
    }
}

/// One scope: which IdP groups hold it, what it grants on MCP servers, and in the registry UI.
///
/// Serialized canonically as `{"name", "group_mappings", "server_access", "ui_permissions"}`;
/// deserialized with the same leniency as an import (`_id`, string `tools`), notes discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "Value")]
#[schema(example = json!({
    "name": "lob1",
    "group_mappings": ["registry-users-lob1"],
    "server_access": [{"server": "currenttime", "methods": ["initialize", "tools/list", "tools/call"],
                       "tools": ["current_time_by_timezone"]}],
    "ui_permissions": {"list_service": ["currenttime"]}
}))]
pub struct ScopeDocument {
    /// The scope name; token scopes name documents directly. Printable ASCII without spaces,
    /// quotes or backslashes (an OAuth scope token), at most 128 characters.
    name: String,
    /// IdP groups (the token's `groups` claim) that hold this scope.
    group_mappings: Vec<String>,
    /// Rules in order; a decision reports the index of the rule that allowed it.
    #[schema(value_type = Vec<ServerRule>)]
    server_access: Vec<AccessEntry>,
    /// UI action → resources (`all`, or server paths such as `/weather`).
    ui_permissions: BTreeMap<String, Vec<String>>,
}

impl ScopeDocument {
    /// Checks and builds a document from parts; errors name the field as in the JSON form.
    pub fn new(
        name: impl Into<String>,
        group_mappings: Vec<String>,
        server_access: Vec<AccessEntry>,
        ui_permissions: BTreeMap<String, Vec<String>>,
    ) -> Result<Self, FieldError> {
        let name = name.into();
        check_scope_name("name", &name)?;
        check_list(
            "group_mappings",
            &group_mappings,
            limits::GROUPS_PER_DOCUMENT,
            |f, g| check_group(f, g),
        )?;
        check_list(
            "server_access",
            &server_access,
            limits::RULES_PER_DOCUMENT,
            |f, e| match e {
                // A `ServerRule` exists only through `ServerRule::new`, so it is already valid.
                AccessEntry::Rule(_) => Ok(()),
                AccessEntry::Opaque(m) => check_opaque(f, m),
            },
        )?;
        check_ui(&ui_permissions)?;
        Ok(Self {
            name,
            group_mappings,
            server_access,
            ui_permissions,
        })
    }

    /// Reads one document from JSON (or YAML parsed to JSON), with notes about what was dropped.
    pub fn from_value(value: &Value) -> Result<(ScopeDocument, Vec<PolicyNote>), FieldError> {
        let mut notes = Vec::new();
        let doc = read_document(value, &mut notes)?;
        Ok((doc, notes))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn group_mappings(&self) -> &[String] {
        &self.group_mappings
    }

    pub fn server_access(&self) -> &[AccessEntry] {
        &self.server_access
    }

    pub fn ui_permissions(&self) -> &BTreeMap<String, Vec<String>> {
        &self.ui_permissions
    }

    /// The server rules with their index in `server_access`.
    pub fn rules(&self) -> impl DoubleEndedIterator<Item = (usize, &ServerRule)> {
        self.server_access
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_rule().map(|r| (i, r)))
    }

    /// Legal but suspicious content: rules that can never match or never grant, unknown UI
    /// actions, opaque entries. Paths are relative to the document.
    pub fn lint(&self) -> Vec<PolicyNote> {
        let mut notes = Vec::new();
        for (i, entry) in self.server_access.iter().enumerate() {
            let field = format!("server_access[{i}]");
            let rule = match entry {
                AccessEntry::Rule(r) => r,
                AccessEntry::Opaque(m) => {
                    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
                    notes.push(PolicyNote::new(
                        field,
                        format!(
                            "entry without `server` (keys: {}) is kept as it is but grants nothing in mcpgw",
                            keys.join(", ")
                        ),
                    ));
                    continue;
                }
            };
            let key = rule.server_key();
            if key == "all" {
                notes.push(PolicyNote::new(
                    format!("{field}.server"),
                    "`all` is the name of a server here, not a wildcard; use `*` for every server",
                ));
            } else if key != "*"
                && let Err(why) = ServerPath::parse(key)
            {
                notes.push(PolicyNote::new(
                    format!("{field}.server"),
                    format!("matches no server mcpgw can register ({why})"),
                ));
            }
            if rule.methods.is_empty() && rule.tools.is_empty() {
                notes.push(PolicyNote::new(
                    field.clone(),
                    "has no methods and no tools: it grants nothing",
                ));
            } else if !rule.tools.is_empty() && !rule.permits_tools_call() {
                notes.push(PolicyNote::new(
                    format!("{field}.tools"),
                    "tools are listed but `methods` has neither `tools/call` nor a wildcard, so \
                     these tools cannot be called (the anchor system allowed it; mcpgw does not)",
                ));
            }
            if rule.allow_write && (rule.tools.is_empty() || !rule.permits_tools_call()) {
                notes.push(PolicyNote::new(
                    format!("{field}.allow_write"),
                    "has no effect: it applies to the tools a rule lets through `tools/call`, and \
                     this rule lets none through (it needs `tools/call` or a wildcard in \
                     `methods`, and `tools`)",
                ));
            }
        }
        for action in self.ui_permissions.keys() {
            if !UI_ACTIONS.contains(&action.as_str()) {
                notes.push(PolicyNote::new(
                    format!("ui_permissions{}", key_segment(action)),
                    format!(
                        "unknown UI action {action:?}, kept as it is; known: {}",
                        UI_ACTIONS.join(", ")
                    ),
                ));
            }
        }
        notes
    }
}

impl TryFrom<Value> for ScopeDocument {
    type Error = FieldError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        ScopeDocument::from_value(&value).map(|(doc, _)| doc)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading from JSON values

/// Formats one map key as a path segment: `.key` when it reads plainly, `["key"]` otherwise.
pub(crate) fn key_segment(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", Value::String(key.to_owned()))
    }
}

/// Joins a parent path and a segment produced by [`key_segment`] or `[i]`.
pub(crate) fn join(parent: &str, segment: &str) -> String {
    match (parent.is_empty(), segment.strip_prefix('.')) {
        (true, Some(plain)) => plain.to_owned(),
        _ => format!("{parent}{segment}"),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn expect_object<'v>(
    field: &str,
    value: &'v Value,
) -> Result<&'v Map<String, Value>, FieldError> {
    value.as_object().ok_or_else(|| {
        FieldError::new(
            field,
            format!("must be an object, not {}", type_name(value)),
        )
    })
}

/// Reads a list of strings. With `one_string`, a single string counts as a one-element list
/// (the anchor writes `"tools": "*"`).
pub(crate) fn read_strings(
    field: &str,
    value: &Value,
    max: usize,
    one_string: bool,
) -> Result<Vec<String>, FieldError> {
    match value {
        Value::String(s) if one_string => Ok(vec![s.clone()]),
        Value::Null if one_string => Ok(Vec::new()),
        Value::Array(items) => {
            if items.len() > max {
                return Err(FieldError::new(
                    field,
                    format!("must have at most {max} entries (got {})", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("must be a string, not {}", type_name(other)),
                    )),
                })
                .collect()
        }
        other => Err(FieldError::new(
            field,
            format!(
                "must be a list of strings{}, not {}",
                if one_string { " or one string" } else { "" },
                type_name(other)
            ),
        )),
    }
}

fn read_document(value: &Value, notes: &mut Vec<PolicyNote>) -> Result<ScopeDocument, FieldError> {
    let obj = expect_object("", value)?;
    let name = match (obj.get("name"), obj.get("_id")) {
        (Some(Value::String(n)), Some(Value::String(id))) if n != id => {
            return Err(FieldError::new(
                "_id",
                format!("{id:?} differs from name {n:?}; give one of them, or the same value"),
            ));
        }
        (Some(Value::String(n)), id) => {
            if id.is_some_and(|id| !id.is_string()) {
                notes.push(PolicyNote::new(
                    "_id",
                    "is not a string; ignored, `name` is used",
                ));
            }
            n.clone()
        }
        (Some(other), _) => {
            return Err(FieldError::new(
                "name",
                format!("must be a string, not {}", type_name(other)),
            ));
        }
        (None, Some(Value::String(id))) => id.clone(),
        (None, Some(other)) => {
            return Err(FieldError::new(
                "_id",
                format!(
                    "must be the scope name as a string, not {}; or give `name`",
                    type_name(other)
                ),
            ));
        }
        (None, None) => return Err(FieldError::new("name", "is required (or `_id`)")),
    };
    check_scope_name(
        if obj.contains_key("name") {
            "name"
        } else {
            "_id"
        },
        &name,
    )?;

    let group_mappings = match obj.get("group_mappings") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            let groups = read_strings("group_mappings", v, limits::GROUPS_PER_DOCUMENT, false)?;
            check_list(
                "group_mappings",
                &groups,
                limits::GROUPS_PER_DOCUMENT,
                |f, g| check_group(f, g),
            )?;
            groups
        }
    };

    let server_access = match obj.get("server_access") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => read_access_list("server_access", v, notes)?,
    };

    let ui_permissions = match obj.get("ui_permissions") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => read_ui("ui_permissions", v)?,
    };

    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "name" | "_id" | "group_mappings" | "server_access" | "ui_permissions"
        ) {
            notes.push(PolicyNote::new(
                join("", &key_segment(key)),
                "unknown field, ignored",
            ));
        }
    }

    Ok(ScopeDocument {
        name,
        group_mappings,
        server_access,
        ui_permissions,
    })
}

/// Reads a `server_access` list (also a legacy scope's list of entries).
pub(crate) fn read_access_list(
    field: &str,
    value: &Value,
    notes: &mut Vec<PolicyNote>,
) -> Result<Vec<AccessEntry>, FieldError> {
    let Value::Array(items) = value else {
        return Err(FieldError::new(
            field,
            format!("must be a list of rules, not {}", type_name(value)),
        ));
    };
    if items.len() > limits::RULES_PER_DOCUMENT {
        return Err(FieldError::new(
            field,
            format!(
                "must have at most {} entries (got {})",
                limits::RULES_PER_DOCUMENT,
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read_entry(&format!("{field}[{i}]"), item, notes))
        .collect()
}

fn read_entry(
    field: &str,
    value: &Value,
    notes: &mut Vec<PolicyNote>,
) -> Result<AccessEntry, FieldError> {
    let obj = expect_object(field, value)?;
    let Some(server) = obj.get("server") else {
        check_opaque(field, obj)?;
        return Ok(AccessEntry::Opaque(obj.clone()));
    };
    let server = match server {
        Value::String(s) => s.clone(),
        other => {
            return Err(FieldError::new(
                format!("{field}.server"),
                format!("must be a string, not {}", type_name(other)),
            ));
        }
    };
    let methods = match obj.get("methods") {
        None => Vec::new(),
        Some(v) => read_strings(
            &format!("{field}.methods"),
            v,
            limits::METHODS_PER_RULE,
            true,
        )?,
    };
    let tools = match obj.get("tools") {
        None => Vec::new(),
        Some(v) => read_strings(&format!("{field}.tools"), v, limits::TOOLS_PER_RULE, true)?,
    };
    let allow_write = match obj.get("allow_write") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(FieldError::new(
                format!("{field}.allow_write"),
                format!("must be true or false, not {}", type_name(other)),
            ));
        }
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "server" | "methods" | "tools" | "allow_write") {
            notes.push(PolicyNote::new(
                join(field, &key_segment(key)),
                "unknown field in a server rule, ignored",
            ));
        }
    }
    ServerRule::new(server, methods, tools)
        .map(|rule| AccessEntry::Rule(rule.with_allow_write(allow_write)))
        .map_err(|e| e.within(field))
}

/// Reads `ui_permissions` (also a legacy `UI-Scopes` entry): action → resources.
pub(crate) fn read_ui(
    field: &str,
    value: &Value,
) -> Result<BTreeMap<String, Vec<String>>, FieldError> {
    let obj = expect_object(field, value)?;
    let mut ui = BTreeMap::new();
    for (action, resources) in obj {
        let f = join(field, &key_segment(action));
        let list = read_strings(&f, resources, limits::RESOURCES_PER_ACTION, true)?;
        ui.insert(action.clone(), list);
    }
    check_ui(&ui).map_err(|e| {
        // check_ui names paths relative to `ui_permissions`; re-root them on `field`.
        match e.field.strip_prefix("ui_permissions") {
            Some(rest) => FieldError::new(format!("{field}{rest}"), e.message),
            None => e,
        }
    })?;
    Ok(ui)
}

// ---------------------------------------------------------------------------------------------
// Field checks, shared by every way in

fn check_list<T>(
    field: &str,
    values: &[T],
    max: usize,
    mut each: impl FnMut(&str, &T) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    if values.len() > max {
        return Err(FieldError::new(
            field,
            format!("must have at most {max} entries (got {})", values.len()),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        each(&format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

/// A scope name is also an OAuth scope token (RFC 6749 §3.3): printable ASCII except space,
/// `"` and `\`.
pub(crate) fn check_scope_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > limits::SCOPE_NAME {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {} characters (got {})",
                limits::SCOPE_NAME,
                name.chars().count()
            ),
        ));
    }
    if !name
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(FieldError::new(
            field,
            format!(
                "{name:?} is not allowed: a scope name is also an OAuth scope, so it may hold only \
                 printable ASCII without spaces, quotes or backslashes"
            ),
        ));
    }
    Ok(())
}

/// Group names come from the IdP as they are (names, full paths, object ids): any text without
/// control characters or surrounding whitespace, which would never match a token's claim.
pub(crate) fn check_group(field: &str, group: &str) -> Result<(), FieldError> {
    check_text(field, group, limits::GROUP_NAME)
}

/// Free-form names (groups, methods, tools, UI actions and resources): not empty, bounded, no
/// control characters, no surrounding whitespace.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    let len = value.chars().count();
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    if value.trim() != value {
        return Err(FieldError::new(
            field,
            format!("{value:?} must not start or end with whitespace"),
        ));
    }
    Ok(())
}

fn check_server(field: &str, server: &str) -> Result<(), FieldError> {
    check_text(field, server, limits::SERVER_NAME)?;
    if server.chars().any(char::is_whitespace) {
        return Err(FieldError::new(
            field,
            format!("{server:?} must not contain whitespace"),
        ));
    }
    if normalize_server(server).is_empty() {
        return Err(FieldError::new(
            field,
            format!("{server:?} names no server; use `*` for every server"),
        ));
    }
    Ok(())
}

fn check_opaque(field: &str, entry: &Map<String, Value>) -> Result<(), FieldError> {
    let size = serde_json::to_vec(entry)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits::OPAQUE_ENTRY_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "entry without `server` is {size} bytes serialized; at most {} are kept",
                limits::OPAQUE_ENTRY_BYTES
            ),
        ));
    }
    Ok(())
}

fn check_ui(ui: &BTreeMap<String, Vec<String>>) -> Result<(), FieldError> {
    if ui.len() > limits::UI_ACTIONS {
        return Err(FieldError::new(
            "ui_permissions",
            format!(
                "must have at most {} actions (got {})",
                limits::UI_ACTIONS,
                ui.len()
            ),
        ));
    }
    for (action, resources) in ui {
        let f = join("ui_permissions", &key_segment(action));
        check_text(&f, action, limits::UI_ACTION_NAME)?;
        check_list(&f, resources, limits::RESOURCES_PER_ACTION, |f, r| {
            check_text(f, r, limits::RESOURCE_NAME)
        })?;
    }
    Ok(())
}
