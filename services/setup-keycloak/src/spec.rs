//! The declarative realm spec: what Keycloak and the registry's policy must contain. The
//! default (`spec/mcpgw.toml`) is compiled in; `--spec FILE` replaces it.
//!
//! Strings may name inputs as `${auth_server_url}`, `${registry_url}`, `${gateway_url}` or
//! `${keycloak_url}`; they are replaced when the spec is loaded, and a placeholder whose
//! input is missing is an error.

use std::collections::{BTreeMap, BTreeSet};

use mcpgw_core::policy::ScopeDocument;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, SetupError};
use crate::inputs::Inputs;

/// The spec shipped with the binary.
pub const DEFAULT_SPEC: &str = include_str!("../spec/mcpgw.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub realm: RealmSpec,
    /// Client scopes: appear in a token's `scope` claim when a client has them.
    #[serde(default)]
    pub client_scopes: Vec<ClientScopeSpec>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
    /// Users with known passwords, for development only: created only when the environment
    /// is `dev`.
    #[serde(default)]
    pub dev_users: Vec<UserSpec>,
    /// The registry's scope documents (policy): `group_mappings` is filled from `groups`.
    #[serde(default)]
    pub scope_documents: Vec<Value>,
    pub validate: Option<ValidateSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmSpec {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Realm attributes set as given (Keycloak's RealmRepresentation field names, e.g.
    /// `registrationAllowed`, `bruteForceProtected`, `accessTokenLifespan`).
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientScopeSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// The registry scopes members hold (the scope documents' `group_mappings`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// A confidential client for browser login: authorization code with PKCE (S256) only.
    Web,
    /// A confidential client for machines: client credentials only, with a service account.
    M2m,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub client_id: String,
    pub kind: ClientKind,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub web_origins: Vec<String>,
    /// Client scopes always in this client's tokens.
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Client scopes in a token when the request asks for them.
    #[serde(default)]
    pub optional_scopes: Vec<String>,
    /// Groups of the service account (m2m clients).
    #[serde(default)]
    pub service_account_groups: Vec<String>,
    #[serde(default)]
    pub mappers: Vec<MapperSpec>,
    /// Also allow the resource-owner password grant (Keycloak's `directAccessGrantsEnabled`):
    /// the client sends a user's password to get that user's token. For development and
    /// tests only; refused when the environment is prod.
    #[serde(default)]
    pub password_grant: bool,
}

/// A protocol mapper on a client.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MapperSpec {
    /// The user's (or service account's) groups as a claim of names (not paths).
    Groups {
        name: String,
        #[serde(default = "default_groups_claim")]
        claim: String,
    },
    /// An audience added to access tokens (the gateway's).
    Audience { name: String, audience: String },
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

impl MapperSpec {
    pub fn name(&self) -> &str {
        match self {
            Self::Groups { name, .. } | Self::Audience { name, .. } => name,
        }
    }

    /// Keycloak's mapper type id and config.
    pub fn keycloak(&self) -> (&'static str, BTreeMap<String, String>) {
        let t = |s: &str| s.to_owned();
        match self {
            Self::Groups { claim, .. } => (
                "oidc-group-membership-mapper",
                BTreeMap::from([
                    (t("claim.name"), claim.clone()),
                    (t("full.path"), t("false")),
                    (t("access.token.claim"), t("true")),
                    (t("id.token.claim"), t("true")),
                    (t("userinfo.token.claim"), t("true")),
                ]),
            ),
            Self::Audience { audience, .. } => (
                "oidc-audience-mapper",
                BTreeMap::from([
                    (t("included.custom.audience"), audience.clone()),
                    (t("access.token.claim"), t("true")),
                    (t("id.token.claim"), t("false")),
                ]),
            ),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The end-to-end check: a token for `client_id` (client credentials), then the gateway's
/// aggregated endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    pub client_id: String,
}

const MAX_SPEC_BYTES: usize = 1024 * 1024;

fn is_name(s: &str, extra: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

impl Spec {
    /// Parses and checks a spec, filling `${…}` placeholders from `inputs`. `origin` names the
    /// file in errors.
    ///
    /// With `need_urls` false (no selected step uses the realm's URLs), a placeholder whose
    /// input is missing becomes `https://unset.invalid` instead of an error.
    pub fn load(text: &str, origin: &str, inputs: &Inputs, need_urls: bool) -> Result<Self> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(SetupError::input(format!(
                "the realm spec {origin} is {} bytes; the limit is {MAX_SPEC_BYTES}",
                text.len()
            )));
        }
        let text = substitute(text, origin, inputs, need_urls)?;
        let spec: Spec = toml::from_str(&text)
            .map_err(|e| SetupError::input(format!("the realm spec {origin} is not valid: {e}")))?;
        spec.check(origin)?;
        Ok(spec)
    }

    fn check(&self, origin: &str) -> Result<()> {
        let bad = |what: String| SetupError::input(format!("the realm spec {origin}: {what}"));
        if !is_name(&self.realm.name, "_-", 64) {
            return Err(bad(format!(
                "realm.name {:?} must be 1-64 letters, digits, _ or -",
                self.realm.name
            )));
        }
        for key in self.realm.settings.keys() {
            if matches!(key.as_str(), "realm" | "id" | "enabled") {
                return Err(bad(format!(
                    "realm.settings.{key} is managed by this program; remove it"
                )));
            }
        }
        let unique =
            |kind: &str, names: &mut dyn Iterator<Item = &str>| -> Result<BTreeSet<String>> {
                let mut seen = BTreeSet::new();
                for n in names {
                    if !seen.insert(n.to_owned()) {
                        return Err(bad(format!("{kind} {n:?} is declared twice")));
                    }
                }
                Ok(seen)
            };
        let client_scopes = unique(
            "client scope",
            &mut self.client_scopes.iter().map(|s| s.name.as_str()),
        )?;
        for s in &self.client_scopes {
            // An OAuth scope token, as the registry's scope names.
            if !is_name(&s.name, "_-./:", 128) {
                return Err(bad(format!(
                    "client scope {:?} must be 1-128 letters, digits or _-./:",
                    s.name
                )));
            }
        }
        let groups = unique("group", &mut self.groups.iter().map(|g| g.name.as_str()))?;
        for g in &self.groups {
            if !is_name(&g.name, "_-.", 128) {
                return Err(bad(format!(
                    "group {:?} must be 1-128 letters, digits or _-.",
                    g.name
                )));
            }
        }
        let mut documents = BTreeSet::new();
        for (i, d) in self.scope_documents.iter().enumerate() {
            if d.get("group_mappings").is_some() {
                return Err(bad(format!(
                    "scope_documents[{i}] has group_mappings: list the scope under the groups that hold it instead"
                )));
            }
            let mut with_groups = d.clone();
            if let Value::Object(m) = &mut with_groups {
                m.insert("group_mappings".into(), Value::Array(vec![]));
            }
            let (doc, _) = ScopeDocument::from_value(&with_groups)
                .map_err(|e| bad(format!("scope_documents[{i}]: {e}")))?;
            if !documents.insert(doc.name().to_owned()) {
                return Err(bad(format!(
                    "scope document {:?} is declared twice",
                    doc.name()
                )));
            }
        }
        for g in &self.groups {
            for s in &g.scopes {
                if !documents.contains(s) && !client_scopes.contains(s) {
                    return Err(bad(format!(
                        "group {:?} holds scope {s:?}, which is neither a scope document nor a client scope",
                        g.name
                    )));
                }
            }
        }
        let clients = unique(
            "client",
            &mut self.clients.iter().map(|c| c.client_id.as_str()),
        )?;
        for c in &self.clients {
            if !is_name(&c.client_id, "_-.", 128) {
                return Err(bad(format!(
                    "client_id {:?} must be 1-128 letters, digits or _-.",
                    c.client_id
                )));
            }
            for s in c.default_scopes.iter().chain(&c.optional_scopes) {
                if !client_scopes.contains(s) {
                    return Err(bad(format!(
                        "client {:?} names client scope {s:?}, which is not declared in [[client_scopes]]",
                        c.client_id
                    )));
                }
            }
            for g in &c.service_account_groups {
                if !groups.contains(g) {
                    return Err(bad(format!(
                        "client {:?} puts its service account in group {g:?}, which is not declared",
                        c.client_id
                    )));
                }
            }
            match c.kind {
                ClientKind::Web => {
                    if c.redirect_uris.is_empty() {
                        return Err(bad(format!(
                            "web client {:?} needs redirect_uris",
                            c.client_id
                        )));
                    }
                    if !c.service_account_groups.is_empty() {
                        return Err(bad(format!(
                            "web client {:?} has no service account; service_account_groups is for m2m clients",
                            c.client_id
                        )));
                    }
                }
                ClientKind::M2m => {
                    if !c.redirect_uris.is_empty() || !c.web_origins.is_empty() {
                        return Err(bad(format!(
                            "m2m client {:?} has no browser flow; remove redirect_uris and web_origins",
                            c.client_id
                        )));
                    }
                }
            }
            for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                // Keycloak's wildcards: a trailing `*`, and `:*` for any port of a loopback
                // host; the rest must be a URL.
                let pattern = u.trim_end_matches('*').replacen(":*", "", 1);
                let parsed = url::Url::parse(&pattern).map_err(|e| {
                    bad(format!(
                        "client {:?}: redirect URI {u:?} is not a URL ({e})",
                        c.client_id
                    ))
                })?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(bad(format!(
                        "client {:?}: redirect URI {u:?} must be http(s)",
                        c.client_id
                    )));
                }
            }
            let mut mappers = BTreeSet::new();
            for m in &c.mappers {
                if !is_name(m.name(), "_- ", 128) || !mappers.insert(m.name()) {
                    return Err(bad(format!(
                        "client {:?}: mapper name {:?} is empty, too long or declared twice",
                        c.client_id,
                        m.name()
                    )));
                }
            }
        }
        unique(
            "dev user",
            &mut self.dev_users.iter().map(|u| u.username.as_str()),
        )?;
        for u in &self.dev_users {
            if !is_name(&u.username, "_-.@", 128) || u.username != u.username.to_lowercase() {
                return Err(bad(format!(
                    "dev user {:?} must be 1-128 lower-case letters, digits or _-.@",
                    u.username
                )));
            }
            if !u.email.contains('@') || u.first_name.is_empty() || u.last_name.is_empty() {
                // Keycloak 26 refuses logins of users without them ("account not fully set up").
                return Err(bad(format!(
                    "dev user {:?} needs email, first_name and last_name",
                    u.username
                )));
            }
            for g in &u.groups {
                if !groups.contains(g) {
                    return Err(bad(format!(
                        "dev user {:?} is in group {g:?}, which is not declared",
                        u.username
                    )));
                }
            }
        }
        if let Some(v) = &self.validate {
            let client = self.clients.iter().find(|c| c.client_id == v.client_id);
            if !clients.contains(&v.client_id) || client.is_some_and(|c| c.kind != ClientKind::M2m)
            {
                return Err(bad(format!(
                    "validate.client_id {:?} must name an m2m client of this spec",
                    v.client_id
                )));
            }
        }
        Ok(())
    }

    /// The registry scope documents with `group_mappings` filled from the groups.
    pub fn registry_scope_documents(&self) -> Vec<ScopeDocument> {
        self.scope_documents
            .iter()
            .map(|d| {
                let mut d = d.clone();
                let name = d
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let holders: Vec<Value> = self
                    .groups
                    .iter()
                    .filter(|g| g.scopes.contains(&name))
                    .map(|g| Value::String(g.name.clone()))
                    .collect();
                if let Value::Object(m) = &mut d {
                    m.insert("group_mappings".into(), Value::Array(holders));
                }
                // Checked in `check`; the only new field is group_mappings of declared groups.
                ScopeDocument::from_value(&d)
                    .expect("scope documents are checked when the spec is loaded")
                    .0
            })
            .collect()
    }

    /// The secret names of generated secrets: client secrets and dev users' passwords.
    pub fn client_secret_id(prefix: &str, client_id: &str) -> String {
        format!("{prefix}/keycloak/clients/{client_id}")
    }

    pub fn user_password_id(prefix: &str, username: &str) -> String {
        format!("{prefix}/keycloak/dev-users/{username}")
    }
}

/// Replaces `${name}` with the input of that name.
fn substitute(text: &str, origin: &str, inputs: &Inputs, need_urls: bool) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            SetupError::input(format!(
                "the realm spec {origin}: an unclosed ${{ placeholder"
            ))
        })?;
        let name = &after[..end];
        let url = match name {
            "auth_server_url" => &inputs.auth_server_url,
            "registry_url" => &inputs.registry_url,
            "gateway_url" => &inputs.gateway_url,
            "keycloak_url" => &inputs.keycloak_url,
            other => {
                return Err(SetupError::input(format!(
                    "the realm spec {origin}: unknown placeholder ${{{other}}} (known: auth_server_url, registry_url, gateway_url, keycloak_url)"
                )));
            }
        };
        match url {
            Some(url) => out.push_str(url.as_str().trim_end_matches('/')),
            None if !need_urls => out.push_str("https://unset.invalid"),
            None => {
                return Err(crate::inputs::missing(name, "realm").with_hint(format!(
                    "the realm spec uses ${{{name}}}: give --{} or the Terraform output {name}",
                    name.replace('_', "-")
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
