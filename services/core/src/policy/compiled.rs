//! The compiled policy: scope documents turned into lookup tables, and the decisions made on them.
//!
//! Rules of this module:
//! - Deny by default. No identity, no known scope, no rule for the server, method or tool: deny.
//! - A decision costs O(number of the caller's scopes) hash lookups, whatever the number of
//!   documents and rules: every string of the policy is interned to a `u32` symbol once, and each
//!   scope keeps, per server, maps from method and tool symbols to the first rule that grants them,
//!   plus wildcard flags.
//! - Decisions are deterministic: scopes are tried in name order, and within a scope the rule
//!   with the lowest `server_access` index wins, so the reported rule does not depend on storage
//!   order or hash order.
//! - Grants add up. Whether writing is allowed (`allow_write`, for write-protected servers) is the
//!   union over every rule of every scope of the caller that allows the request, not a property of
//!   the reported rule: each table entry carries a write bit beside the rule index, and after the
//!   first allowing scope only scopes that have `allow_write` rules at all are looked at.
//! - A [`CompiledPolicy`] is immutable, `Send + Sync`, and meant to be shared as
//!   `Arc<CompiledPolicy>`; a new snapshot is compiled beside the old one and swapped in.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::document::{PolicyNote, ScopeDocument, TOOLS_CALL, is_wildcard, normalize_server};

/// Who is asking: the IdP groups of the token (Keycloak's `groups` claim) and its scopes.
///
/// Groups map to scope documents through their `group_mappings`; token scopes name scope
/// documents directly. Names that match no document are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
}

impl Identity {
    pub fn new(groups: Vec<String>, scopes: Vec<String>) -> Self {
        Self { groups, scopes }
    }

    /// Builds an identity from a `groups` claim and an OAuth `scope` claim (space-separated).
    pub fn from_claims(groups: Vec<String>, scope_claim: &str) -> Self {
        Self {
            groups,
            scopes: scope_claim.split_whitespace().map(str::to_owned).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.scopes.is_empty()
    }
}

/// The rule that allowed a request: a scope document and an index into its `server_access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedRule {
    #[serde(serialize_with = "serialize_arc_str")]
    pub scope: Arc<str>,
    pub rule_index: u32,
}

fn serialize_arc_str<S: serde::Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

impl MatchedRule {
    /// `scope "<name>" server_access[<index>]`, as audit events and logs carry it.
    ///
    /// Built by hand, not through `format!`: it is made for every allowed call, and `{:?}` of
    /// the name escapes it a character at a time. Names that `{:?}` would escape (quotes,
    /// backslashes, non-ASCII) still go through it, so the text is the same either way.
    pub fn label(&self) -> String {
        let plain = self
            .scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ');
        let mut out = String::with_capacity(self.scope.len() + 32);
        if plain {
            out.push_str("scope \"");
            out.push_str(&self.scope);
            out.push('"');
        } else {
            out.push_str(&format!("scope {:?}", self.scope));
        }
        out.push_str(" server_access[");
        // Writing to a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{}]", self.rule_index));
        out
    }
}

impl fmt::Display for MatchedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Why a decision came out the way it did. Stable snake_case names, for audit events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    /// A rule grants the method (or, for `tools/call`, the tool).
    Allowed,
    /// The identity has no groups and no scopes.
    NoIdentity,
    /// None of the identity's groups or scopes maps to a scope document.
    NoKnownScope,
    /// No rule of the caller's scopes names this server (or `*`).
    NoRuleForServer,
    /// Rules name the server, but none grants the method.
    MethodNotAllowed,
    /// `tools/call` is granted on the server, but not for this tool.
    ToolNotAllowed,
    /// `tools/call` without a tool name: nothing to check, so deny.
    ToolNameMissing,
}

impl DecisionReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionReason::Allowed => "allowed",
            DecisionReason::NoIdentity => "no_identity",
            DecisionReason::NoKnownScope => "no_known_scope",
            DecisionReason::NoRuleForServer => "no_rule_for_server",
            DecisionReason::MethodNotAllowed => "method_not_allowed",
            DecisionReason::ToolNotAllowed => "tool_not_allowed",
            DecisionReason::ToolNameMissing => "tool_name_missing",
        }
    }
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to "may this identity call this method (and tool) on this server?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that allowed it; `None` when denied.
    pub matched: Option<MatchedRule>,
    pub reason: DecisionReason,
    /// Whether writing is allowed too: some rule of the caller's scopes that allows this request
    /// has `allow_write` (any of them, not only `matched`). For `tools/call`, it says whether the
    /// tool may be called on a server with write protection on when it is not annotated
    /// `readOnlyHint: true`. Always false when denied.
    pub write_allowed: bool,
}

impl Decision {
    fn allow(scope: &Arc<str>, rule_index: u32, write_allowed: bool) -> Self {
        Self {
            allowed: true,
            matched: Some(MatchedRule {
                scope: Arc::clone(scope),
                rule_index,
            }),
            reason: DecisionReason::Allowed,
            write_allowed,
        }
    }

    fn deny(reason: DecisionReason) -> Self {
        Self {
            allowed: false,
            matched: None,
            reason,
            write_allowed: false,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.matched {
            Some(rule) if self.write_allowed => write!(f, "allowed by {rule}, writes allowed"),
            Some(rule) => write!(f, "allowed by {rule}"),
            None => write!(f, "denied: {}", self.reason),
        }
    }
}

/// What a caller may do with one UI action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiGrant {
    /// Every resource (`all` or `*`).
    All,
    /// Only these resources, slashes trimmed (`/weather` → `weather`); empty means none.
    Only(BTreeSet<String>),
}

impl UiGrant {
    pub fn allows(&self, resource: &str) -> bool {
        match self {
            UiGrant::All => true,
            UiGrant::Only(set) => set.contains(normalize_server(resource)),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, UiGrant::Only(set) if set.is_empty())
    }
}

/// What the registry serves and gateways fetch: the documents of one policy version.
///
/// Gateways compile it themselves ([`PolicySnapshot::compile`]); the compiled tables are never
/// sent over the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicySnapshot {
    /// Increases with every change to any scope document.
    pub version: u64,
    pub documents: Vec<ScopeDocument>,
}

impl PolicySnapshot {
    pub fn compile(&self) -> CompiledPolicy {
        CompiledPolicy::compile(&self.documents, self.version)
    }
}

/// Counts, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyStats {
    pub scopes: usize,
    pub groups: usize,
    pub rules: usize,
}

// ---------------------------------------------------------------------------------------------
// Tables

/// Hashes `u32` symbols with one multiply. Symbols are ours (dense ids), never attacker-chosen
/// keys at insertion, so a keyed hash buys nothing here.
#[derive(Default, Clone, Copy)]
struct SymbolHasher(u64);

impl Hasher for SymbolHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type SymbolMap<V> = HashMap<u32, V, BuildHasherDefault<SymbolHasher>>;

/// A grant in a [`RuleTable`]: the lowest rule index that grants a name, and in the top bit
/// whether any rule granting it has `allow_write`. Rule indices are below
/// [`limits::RULES_PER_DOCUMENT`](super::document::limits::RULES_PER_DOCUMENT), far from the bit.
type Grant = u32;

const WRITE: Grant = 1 << 31;

fn rule_index(grant: Grant) -> u32 {
    grant & !WRITE
}

fn writes(grant: Grant) -> bool {
    grant & WRITE != 0
}

/// Adds rule `index` to a grant: rules are visited in index order, so the first one is the
/// lowest; the write bit is the union.
fn add_rule(slot: &mut Option<Grant>, index: u32, allow_write: bool) {
    let bit = if allow_write { WRITE } else { 0 };
    *slot = Some(slot.unwrap_or(index) | bit);
}

/// What one scope grants on one server (or on `*`): method and tool symbol → [`Grant`].
#[derive(Debug, Default)]
struct RuleTable {
    methods: SymbolMap<Grant>,
    /// Rules whose methods are a wildcard.
    any_method: Option<Grant>,
    /// Tools of rules that permit `tools/call`.
    tools: SymbolMap<Grant>,
    /// Rules permitting `tools/call` with a tool wildcard.
    any_tool: Option<Grant>,
    /// Whether any rule permits `tools/call` here (for the deny reason).
    calls: bool,
    /// Whether any rule permitting `tools/call` here has `allow_write` (for [`ToolFilter`]).
    call_writes: bool,
}

impl RuleTable {
    fn method_rule(&self, method: Option<u32>) -> Option<Grant> {
        merge(
            self.any_method,
            method.and_then(|m| self.methods.get(&m).copied()),
        )
    }

    fn tool_rule(&self, tool: Option<u32>) -> Option<Grant> {
        merge(
            self.any_tool,
            tool.and_then(|t| self.tools.get(&t).copied()),
        )
    }

    /// The grant for a request: `target` is the tool's symbol for `tools/call`, else the
    /// method's.
    fn grant(&self, is_call: bool, target: Option<u32>) -> Option<Grant> {
        if is_call {
            self.tool_rule(target)
        } else {
            self.method_rule(target)
        }
    }
}

/// Both grants together: the lower rule index, and the write bit if either has it.
fn merge(a: Option<Grant>, b: Option<Grant>) -> Option<Grant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(rule_index(a).min(rule_index(b)) | ((a | b) & WRITE)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[derive(Debug, Default)]
struct UiTable {
    all: bool,
    resources: BTreeSet<Box<str>>,
}

#[derive(Debug)]
struct CompiledScope {
    name: Arc<str>,
    /// Server symbol → its rules.
    servers: SymbolMap<RuleTable>,
    /// Rules for `*`.
    any_server: Option<RuleTable>,
    ui: HashMap<Box<str>, UiTable>,
}

impl CompiledScope {
    /// The tables that apply to a server: its own and `*`'s.
    fn tables(&self, server: Option<u32>) -> [Option<&RuleTable>; 2] {
        [
            server.and_then(|s| self.servers.get(&s)),
            self.any_server.as_ref(),
        ]
    }
}

/// Scope documents compiled into lookup tables. See the module documentation for its rules.
#[derive(Debug)]
pub struct CompiledPolicy {
    version: u64,
    /// Every server, method and tool name of the policy → its symbol.
    symbols: HashMap<Box<str>, u32>,
    /// Sorted by name; a scope's index is its position.
    scopes: Vec<CompiledScope>,
    /// By scope index: whether the scope has any rule with `allow_write`. Kept apart from
    /// `scopes` so that the write union skips the other scopes without touching them.
    scope_writes: Box<[bool]>,
    scope_by_name: HashMap<Box<str>, u32>,
    /// Group → indices of the scopes it maps to, ascending.
    scopes_by_group: HashMap<Box<str>, Box<[u32]>>,
    rules: usize,
    warnings: Vec<PolicyNote>,
}

impl CompiledPolicy {
    /// A policy that denies everything.
    pub fn empty(version: u64) -> Self {
        Self::compile(&[], version)
    }

    /// Compiles documents into lookup tables.
    ///
    /// Documents are ordered by name. If two share a name (the registry's store prevents this),
    /// the later one in `docs` wins and [`CompiledPolicy::warnings`] says so.
    pub fn compile(docs: &[ScopeDocument], version: u64) -> Self {
        let mut warnings = Vec::new();
        // Later documents win: keep the last index per name, then order by name.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            if let Some(previous) = last.insert(doc.name(), i) {
                warnings.push(PolicyNote::new(
                    format!("[{previous}]"),
                    format!(
                        "scope {:?} is defined again at [{i}]; the later document is used",
                        doc.name()
                    ),
                ));
            }
        }
        let mut chosen: Vec<&ScopeDocument> = last.into_values().map(|i| &docs[i]).collect();
        chosen.sort_by(|a, b| a.name().cmp(b.name()));

        let mut symbols: HashMap<Box<str>, u32> = HashMap::new();
        let mut intern = |s: &str| -> u32 {
            if let Some(&id) = symbols.get(s) {
                return id;
            }
            let id = u32::try_from(symbols.len()).expect("fewer than 2^32 distinct names");
            symbols.insert(s.into(), id);
            id
        };

        let mut scopes = Vec::with_capacity(chosen.len());
        let mut scope_writes = Vec::with_capacity(chosen.len());
        let mut scope_by_name = HashMap::with_capacity(chosen.len());
        let mut groups: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        let mut rule_count = 0;
        for (index, doc) in chosen.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 scopes");
            scope_by_name.insert(Box::from(doc.name()), index);
            for group in doc.group_mappings() {
                let list = groups.entry(group.as_str().into()).or_default();
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }

            let mut servers: SymbolMap<RuleTable> = SymbolMap::default();
            let mut any_server: Option<RuleTable> = None;
            let mut doc_writes = false;
            for (i, rule) in doc.rules() {
                rule_count += 1;
                let i = u32::try_from(i).expect("rules per document are bounded");
                assert!(i < WRITE, "rule indices stay below the write bit");
                let key = rule.server_key();
                let table = if key == "*" {
                    any_server.get_or_insert_with(RuleTable::default)
                } else {
                    servers.entry(intern(key)).or_default()
                };
                let w = rule.allow_write();
                doc_writes |= w;
                // Rules are visited in index order, so the first one added is the lowest index.
                for method in rule.methods() {
                    if is_wildcard(method) {
                        add_rule(&mut table.any_method, i, w);
                    } else {
                        let slot = table.methods.entry(intern(method)).or_insert(i);
                        *slot |= if w { WRITE } else { 0 };
                    }
                }
                if rule.permits_tools_call() {
                    table.calls = true;
                    table.call_writes |= w && !rule.tools().is_empty();
                    for tool in rule.tools() {
                        if is_wildcard(tool) {
                            add_rule(&mut table.any_tool, i, w);
                        } else {
                            let slot = table.tools.entry(intern(tool)).or_insert(i);
                            *slot |= if w { WRITE } else { 0 };
                        }
                    }
                }
            }
            scope_writes.push(doc_writes);
            for table in servers.values_mut().chain(any_server.as_mut()) {
                table.methods.shrink_to_fit();
                table.tools.shrink_to_fit();
            }
            servers.shrink_to_fit();

            let mut ui: HashMap<Box<str>, UiTable> = HashMap::new();
            for (action, resources) in doc.ui_permissions() {
                let table = ui.entry(action.as_str().into()).or_default();
                for resource in resources {
                    if is_wildcard(resource) {
                        table.all = true;
                    } else {
                        table.resources.insert(normalize_server(resource).into());
                    }
                }
            }

            scopes.push(CompiledScope {
                name: Arc::from(doc.name()),
                servers,
                any_server,
                ui,
            });
        }
        symbols.shrink_to_fit();

        Self {
            version,
            symbols,
            scopes,
            scope_writes: scope_writes.into_boxed_slice(),
            scope_by_name,
            scopes_by_group: groups
                .into_iter()
                .map(|(g, mut list)| {
                    list.sort_unstable();
                    list.dedup();
                    (g, list.into_boxed_slice())
                })
                .collect(),
            rules: rule_count,
            warnings,
        }
    }

    /// The snapshot version this policy was compiled from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Problems found while compiling (duplicate scope names).
    pub fn warnings(&self) -> &[PolicyNote] {
        &self.warnings
    }

    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            scopes: self.scopes.len(),
            groups: self.scopes_by_group.len(),
            rules: self.rules,
        }
    }

    /// Resolves an identity to its scope documents once, for several decisions.
    pub fn caller(&self, identity: &Identity) -> Caller<'_> {
        let mut scopes: Vec<u32> = Vec::with_capacity(8);
        for group in &identity.groups {
            if let Some(list) = self.scopes_by_group.get(group.as_str()) {
                scopes.extend_from_slice(list);
            }
        }
        for scope in &identity.scopes {
            if let Some(&index) = self.scope_by_name.get(scope.as_str()) {
                scopes.push(index);
            }
        }
        scopes.sort_unstable();
        scopes.dedup();
        Caller {
            policy: self,
            scopes,
            presented: !identity.is_empty(),
        }
    }

    /// Decides one request. For several decisions about the same identity, use
    /// [`CompiledPolicy::caller`] once.
    pub fn decide(
        &self,
        identity: &Identity,
        server: &str,
        method: &str,
        tool: Option<&str>,
    ) -> Decision {
        self.caller(identity).decide(server, method, tool)
    }

    /// The tools of `tools` that the identity may call on `server` (for filtering `tools/list`).
    pub fn allowed_tools<'t>(
        &self,
        identity: &Identity,
        server: &str,
        tools: impl IntoIterator<Item = &'t str>,
    ) -> Vec<&'t str> {
        let caller = self.caller(identity);
        let filter = caller.tool_filter(server);
        tools.into_iter().filter(|t| filter.allows(t)).collect()
    }

    /// Whether the identity may perform a UI action on a resource (a server path such as
    /// `/weather` or `weather`).
    pub fn ui_allowed(&self, identity: &Identity, action: &str, resource: &str) -> bool {
        self.caller(identity).ui_allowed(action, resource)
    }

    fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols.get(name).copied()
    }
}

/// An identity resolved against one [`CompiledPolicy`]: its scope documents, in name order.
#[derive(Debug, Clone)]
pub struct Caller<'p> {
    policy: &'p CompiledPolicy,
    scopes: Vec<u32>,
    /// Whether the identity had any group or scope at all (for the deny reason).
    presented: bool,
}

impl<'p> Caller<'p> {
    /// Names of the scope documents this caller holds, in name order (for logs and audit).
    pub fn scope_names(&self) -> impl Iterator<Item = &'p str> + '_ {
        self.scopes
            .iter()
            .map(|&i| &*self.policy.scopes[i as usize].name)
    }

    /// Whether the caller holds no scope document (every decision is a deny).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    fn no_scope(&self) -> Option<Decision> {
        if !self.scopes.is_empty() {
            return None;
        }
        Some(Decision::deny(if self.presented {
            DecisionReason::NoKnownScope
        } else {
            DecisionReason::NoIdentity
        }))
    }

    /// Decides one request.
    ///
    /// `server` is the server path, slashes trimmed. For `tools/call`, `tool` is `params.name`:
    /// the rule must permit `tools/call` in its `methods` and list the tool (or a wildcard) in its
    /// `tools`. For any other method, `tool` is ignored and the method must be in `methods`.
    pub fn decide(&self, server: &str, method: &str, tool: Option<&str>) -> Decision {
        if let Some(denied) = self.no_scope() {
            return denied;
        }
        let policy = self.policy;
        let server = policy.symbol(normalize_server(server));
        let is_call = method == TOOLS_CALL;
        let target = if is_call {
            match tool {
                Some(tool) => policy.symbol(tool),
                None => return Decision::deny(DecisionReason::ToolNameMissing),
            }
        } else {
            policy.symbol(method)
        };

        let grant = |table: &RuleTable| table.grant(is_call, target);
        let mut reason = DecisionReason::NoRuleForServer;
        for (at, &index) in self.scopes.iter().enumerate() {
            let scope = &policy.scopes[index as usize];
            let mut best = None;
            for table in scope.tables(server).into_iter().flatten() {
                if is_call && table.calls {
                    reason = DecisionReason::ToolNotAllowed;
                } else if reason == DecisionReason::NoRuleForServer {
                    reason = DecisionReason::MethodNotAllowed;
                }
                best = merge(best, grant(table));
            }
            if let Some(best) = best {
                // Writing is the union over every allowing rule: look further only if this
                // scope does not grant it, and only at scopes that have `allow_write` rules.
                let write_allowed = writes(best)
                    || self.scopes[at + 1..].iter().any(|&later| {
                        policy.scope_writes[later as usize]
                            && policy.scopes[later as usize]
                                .tables(server)
                                .into_iter()
                                .flatten()
                                .any(|t| grant(t).is_some_and(writes))
                    });
                return Decision::allow(&scope.name, rule_index(best), write_allowed);
            }
        }
        Decision::deny(reason)
    }

    /// Names of the scope documents this caller does not hold that would allow the request:
    /// what a `403 insufficient_scope` challenge names (RFC 6750 `scope`), so that a client
    /// can ask for exactly that. The same rules as [`Caller::decide`] decide what "would
    /// allow" means, so a document that only lists the server, or grants another tool or
    /// method, is never named; nor is any of the caller's own.
    ///
    /// Documents with a rule for this very server are named alone when there are any: a
    /// document granting through the `*` server (usually an administrator's) is named only
    /// when nothing narrower would do, so challenges point at the least privilege and do not
    /// advertise the broad scopes. At most `limit` names, in name order. Empty when nothing
    /// would allow it, e.g. `tools/call` without a tool name.
    pub fn scopes_granting(
        &self,
        server: &str,
        method: &str,
        tool: Option<&str>,
        limit: usize,
    ) -> Vec<&'p str> {
        let policy = self.policy;
        let is_call = method == TOOLS_CALL;
        let target = match (is_call, tool) {
            (true, None) => return Vec::new(),
            (true, Some(tool)) => policy.symbol(tool),
            (false, _) => policy.symbol(method),
        };
        let server = policy.symbol(normalize_server(server));
        let mut narrow = Vec::new();
        let mut broad = Vec::new();
        for (index, scope) in policy.scopes.iter().enumerate() {
            let held = u32::try_from(index).is_ok_and(|i| self.scopes.binary_search(&i).is_ok());
            if held {
                continue;
            }
            let [own, any] = scope.tables(server);
            if own.is_some_and(|t| t.grant(is_call, target).is_some()) {
                narrow.push(&*scope.name);
                if narrow.len() == limit {
                    break;
                }
            } else if narrow.is_empty()
                && broad.len() < limit
                && any.is_some_and(|t| t.grant(is_call, target).is_some())
            {
                broad.push(&*scope.name);
            }
        }
        if narrow.is_empty() { broad } else { narrow }
    }

    /// Prepares the checks for one server, to filter a `tools/list` result tool by tool.
    pub fn tool_filter(&self, server: &str) -> ToolFilter<'p> {
        let policy = self.policy;
        let server = policy.symbol(normalize_server(server));
        let mut scopes = Vec::new();
        let mut any = None;
        let mut any_write = false;
        let mut some_write = false;
        let mut denied = match self.no_scope() {
            Some(decision) => decision.reason,
            None => DecisionReason::NoRuleForServer,
        };
        for &index in &self.scopes {
            let scope = &policy.scopes[index as usize];
            let tables = scope.tables(server);
            if tables.iter().any(Option::is_some) && denied == DecisionReason::NoRuleForServer {
                denied = DecisionReason::MethodNotAllowed;
            }
            let callable = tables.map(|t| t.filter(|t| t.calls));
            if callable.iter().all(Option::is_none) {
                continue;
            }
            denied = DecisionReason::ToolNotAllowed;
            if any.is_none() && callable.iter().flatten().any(|t| t.any_tool.is_some()) {
                any = Some(scopes.len());
            }
            for table in callable.iter().flatten() {
                some_write |= table.call_writes;
                any_write |= table.any_tool.is_some_and(writes);
            }
            scopes.push((scope, callable));
        }
        ToolFilter {
            policy,
            scopes,
            any,
            any_write,
            some_write,
            denied,
        }
    }

    /// The tools of `tools` this caller may call on `server`.
    pub fn allowed_tools<'t>(
        &self,
        server: &str,
        tools: impl IntoIterator<Item = &'t str>,
    ) -> Vec<&'t str> {
        let filter = self.tool_filter(server);
        tools.into_iter().filter(|t| filter.allows(t)).collect()
    }

    /// Whether any of the caller's scopes grants `action` on `resource` (or on `all`).
    pub fn ui_allowed(&self, action: &str, resource: &str) -> bool {
        let resource = normalize_server(resource);
        self.scopes.iter().any(|&i| {
            self.policy.scopes[i as usize]
                .ui
                .get(action)
                .is_some_and(|t| t.all || t.resources.contains(resource))
        })
    }

    /// Everything the caller may do with one UI action, e.g. to filter a list of servers.
    pub fn ui_grant(&self, action: &str) -> UiGrant {
        let mut only = BTreeSet::new();
        for &i in &self.scopes {
            if let Some(t) = self.policy.scopes[i as usize].ui.get(action) {
                if t.all {
                    return UiGrant::All;
                }
                only.extend(t.resources.iter().map(|r| r.to_string()));
            }
        }
        UiGrant::Only(only)
    }
}

/// Tool checks for one caller on one server; built by [`Caller::tool_filter`].
#[derive(Debug)]
pub struct ToolFilter<'p> {
    policy: &'p CompiledPolicy,
    /// The caller's scopes that permit `tools/call` on the server, in name order, each with the
    /// server's own table and the `*` table.
    scopes: Vec<(&'p CompiledScope, [Option<&'p RuleTable>; 2])>,
    /// Position in `scopes` of the first scope that grants every tool.
    any: Option<usize>,
    /// Whether some scope grants writing to every tool (a tool wildcard with `allow_write`).
    any_write: bool,
    /// Whether some rule in `scopes` grants writing at all.
    some_write: bool,
    /// The reason to give when a tool is not granted.
    denied: DecisionReason,
}

impl ToolFilter<'_> {
    /// Whether the tool may be called; the same answer as `decide(server, "tools/call", tool)`.
    pub fn allows(&self, tool: &str) -> bool {
        if self.any.is_some() {
            return true;
        }
        let Some(tool) = self.policy.symbol(tool) else {
            return false;
        };
        self.scopes
            .iter()
            .any(|(_, tables)| tables.iter().flatten().any(|t| t.tools.contains_key(&tool)))
    }

    /// Whether the tool may be called on a server with write protection on although it is not
    /// annotated `readOnlyHint: true`: some rule that lets the tool through `tools/call` has
    /// `allow_write`. The same answer as `decide(server, "tools/call", Some(tool)).write_allowed`;
    /// implies [`ToolFilter::allows`].
    pub fn allows_write(&self, tool: &str) -> bool {
        if self.any_write {
            return true;
        }
        if !self.some_write {
            return false;
        }
        let Some(tool) = self.policy.symbol(tool) else {
            return false;
        };
        self.scopes.iter().any(|(_, tables)| {
            tables
                .iter()
                .flatten()
                .any(|t| t.call_writes && t.tools.get(&tool).is_some_and(|&g| writes(g)))
        })
    }

    /// The decision for calling the tool, with the rule that allows it; the same answer as
    /// `decide(server, "tools/call", Some(tool))`.
    pub fn decide(&self, tool: &str) -> Decision {
        let symbol = self.policy.symbol(tool);
        // Scopes after the first all-tools scope cannot come first.
        let end = self.any.map_or(self.scopes.len(), |at| at + 1);
        for (scope, tables) in &self.scopes[..end] {
            let grant = tables
                .iter()
                .flatten()
                .fold(None, |best, t| merge(best, t.tool_rule(symbol)));
            if let Some(grant) = grant {
                let write_allowed = writes(grant) || self.allows_write(tool);
                return Decision::allow(&scope.name, rule_index(grant), write_allowed);
            }
        }
        Decision::deny(self.denied)
    }
}
