//! A registered A2A agent (<https://a2a-protocol.org>): its agent card plus the same
//! governance metadata, lifecycle and enable flag as an MCP server.
//!
//! The card is validated field by field with the limits in [`limits`]; fields of the A2A card
//! this registry does not model are accepted and dropped (cards evolve; a registration by URL
//! must not fail because an agent publishes a newer field). The whole card, as stored, is at
//! most [`limits::CARD_BYTES`].
//!
//! Approval pins the card: the transition `security_review → approved_dev` records the card's
//! content hash, and a card that differs later (updated through the API, or re-fetched from
//! `card_url` by a health check) shows `card_status: changed_needs_review`, like a changed tool.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::lifecycle::{Lifecycle, LifecycleEvent};
use super::server::{Governance, HealthStatus, ServerPath, spec_path, spec_tags, web_url};
use super::tool::{canonical_json, sha256_hex};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Limits of an agent spec and its card.
pub mod limits {
    /// The whole card as stored (canonical JSON), in bytes.
    pub const CARD_BYTES: usize = 256 * 1024;
    /// A card fetched from `card_url` is read up to this many bytes, then refused.
    pub const FETCH_BYTES: usize = 1024 * 1024;
    pub const NAME: usize = 128;
    pub const DESCRIPTION: usize = 4096;
    pub const VERSION: usize = 64;
    pub const SKILLS: usize = 128;
    pub const SKILL_ID: usize = 128;
    pub const SKILL_TAGS: usize = 32;
    pub const EXAMPLES: usize = 16;
    pub const EXAMPLE: usize = 1024;
    pub const MODES: usize = 16;
    pub const MODE: usize = 128;
    /// Any JSON object kept as given (capabilities, securitySchemes, …), canonical bytes.
    pub const OBJECT_BYTES: usize = 32 * 1024;
    pub const LIST_OBJECTS: usize = 32;
}

/// The organization that provides the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentProvider {
    pub organization: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One skill the agent offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSkill {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_modes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_modes: Vec<String>,
}

/// An A2A agent card (camelCase on the wire, as `/.well-known/agent-card.json` serves it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Where the agent is served (its A2A endpoint).
    pub url: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<AgentProvider>,
    /// `streaming`, `pushNotifications`, … kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub capabilities: Option<Value>,
    #[serde(default)]
    pub default_input_modes: Vec<String>,
    #[serde(default)]
    pub default_output_modes: Vec<String>,
    #[serde(default)]
    pub skills: Vec<AgentSkill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub security_schemes: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub security: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_authenticated_extended_card: Option<bool>,
}

fn modes(field: &str, values: &[String]) -> Result<Vec<String>, FieldError> {
    validate::list(field, values, limits::MODES, |f, m| {
        validate::text(f, m, 1, limits::MODE)
    })
}

fn optional_url(field: &str, value: Option<&str>) -> Result<Option<String>, FieldError> {
    match validate::optional_text(field, value, 2048)? {
        None => Ok(None),
        Some(u) => Ok(Some(web_url(field, &u)?.to_string())),
    }
}

/// A JSON object kept as given, bounded in size.
fn bounded_object(field: &str, value: &Option<Value>) -> Result<Option<Value>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => {
            if canonical_json(v).len() > limits::OBJECT_BYTES {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {} bytes of JSON", limits::OBJECT_BYTES),
                ));
            }
            Ok(Some(v.clone()))
        }
        Some(_) => Err(FieldError::new(field, "must be a JSON object")),
    }
}

impl AgentSkill {
    fn validate(&self, field: &str) -> Result<AgentSkill, FieldError> {
        let f = |name: &str| format!("{field}.{name}");
        Ok(AgentSkill {
            id: validate::text(&f("id"), &self.id, 1, limits::SKILL_ID)?,
            name: validate::text(&f("name"), &self.name, 1, limits::NAME)?,
            description: validate::text(
                &f("description"),
                &self.description,
                0,
                limits::DESCRIPTION,
            )?,
            tags: validate::list(&f("tags"), &self.tags, limits::SKILL_TAGS, |f, t| {
                validate::text(f, t, 1, super::server::limits::TAG)
            })?,
            examples: validate::list(&f("examples"), &self.examples, limits::EXAMPLES, |f, e| {
                validate::text(f, e, 1, limits::EXAMPLE)
            })?,
            input_modes: modes(&f("inputModes"), &self.input_modes)?,
            output_modes: modes(&f("outputModes"), &self.output_modes)?,
        })
    }
}

impl AgentCard {
    /// Checks every field (errors name `card.<field>`) and the size of the whole card.
    pub fn validate(&self) -> Result<AgentCard, FieldError> {
        let c = |name: &str| format!("card.{name}");
        let version = validate::text(&c("version"), &self.version, 1, limits::VERSION)?;
        let skills = validate::list(&c("skills"), &self.skills, limits::SKILLS, |f, s| {
            s.validate(f)
        })?;
        let mut ids = std::collections::BTreeSet::new();
        for (i, s) in skills.iter().enumerate() {
            if !ids.insert(s.id.as_str()) {
                return Err(FieldError::new(
                    format!("card.skills[{i}].id"),
                    format!("{:?} is used by an earlier skill", s.id),
                ));
            }
        }
        let objects = |field: &str, list: &[Value]| {
            validate::list(field, list, limits::LIST_OBJECTS, |f, v| {
                bounded_object(f, &Some(v.clone())).map(Option::unwrap_or_default)
            })
        };
        let card = AgentCard {
            name: validate::text(&c("name"), &self.name, 1, limits::NAME)?,
            description: validate::text(
                &c("description"),
                &self.description,
                0,
                limits::DESCRIPTION,
            )?,
            url: web_url(&c("url"), self.url.trim())?.to_string(),
            version,
            protocol_version: validate::optional_text(
                &c("protocolVersion"),
                self.protocol_version.as_deref(),
                limits::VERSION,
            )?,
            provider: match &self.provider {
                None => None,
                Some(p) => Some(AgentProvider {
                    organization: validate::text(
                        &c("provider.organization"),
                        &p.organization,
                        1,
                        128,
                    )?,
                    url: optional_url(&c("provider.url"), p.url.as_deref())?,
                }),
            },
            capabilities: bounded_object(&c("capabilities"), &self.capabilities)?,
            default_input_modes: modes(&c("defaultInputModes"), &self.default_input_modes)?,
            default_output_modes: modes(&c("defaultOutputModes"), &self.default_output_modes)?,
            skills,
            security_schemes: bounded_object(&c("securitySchemes"), &self.security_schemes)?,
            security: objects(&c("security"), &self.security)?,
            preferred_transport: validate::optional_text(
                &c("preferredTransport"),
                self.preferred_transport.as_deref(),
                64,
            )?,
            icon_url: optional_url(&c("iconUrl"), self.icon_url.as_deref())?,
            documentation_url: optional_url(
                &c("documentationUrl"),
                self.documentation_url.as_deref(),
            )?,
            supports_authenticated_extended_card: self.supports_authenticated_extended_card,
        };
        if card.canonical().len() > limits::CARD_BYTES {
            return Err(FieldError::new(
                "card",
                format!("must be at most {} bytes of JSON", limits::CARD_BYTES),
            ));
        }
        Ok(card)
    }

    fn canonical(&self) -> String {
        canonical_json(&serde_json::to_value(self).unwrap_or_default())
    }

    /// SHA-256 of the canonical JSON of the card (key order and white space do not count).
    pub fn content_hash(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }

    /// The card's own well-known address, on the origin of its `url`.
    pub fn well_known_url(&self) -> Option<String> {
        let mut url = url::Url::parse(&self.url).ok()?;
        url.set_path("/.well-known/agent-card.json");
        url.set_query(None);
        url.set_fragment(None);
        Some(url.to_string())
    }
}

/// What a client sends to register or replace an agent: the card itself, or `card_url` to
/// have the registry fetch it (through the egress policy), or both (the card is then kept as
/// given and `card_url` is where health checks re-fetch it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Required on create; on update it may be given but must match the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<AgentCard>,
    /// Where the card is published, e.g. `https://agent.example/.well-known/agent-card.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_url: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub governance: Governance,
}

/// A spec that passed every check that needs no network (the card may still be missing: it
/// is then fetched from `card_url`).
#[derive(Debug, Clone)]
pub struct ValidAgentSpec {
    pub path: Option<ServerPath>,
    pub card: Option<AgentCard>,
    pub card_url: Option<String>,
    pub tags: Vec<String>,
    pub governance: Governance,
}

impl AgentSpec {
    pub fn validate(&self) -> Result<ValidAgentSpec, FieldError> {
        let path = spec_path(self.path.as_deref())?;
        let card = self.card.as_ref().map(AgentCard::validate).transpose()?;
        let card_url = optional_url("card_url", self.card_url.as_deref())?;
        if card.is_none() && card_url.is_none() {
            return Err(FieldError::new(
                "card",
                "is required unless card_url names where to fetch it",
            ));
        }
        let tags = spec_tags(&self.tags)?;
        Ok(ValidAgentSpec {
            path,
            card,
            card_url,
            tags,
            governance: self.governance.validate()?,
        })
    }
}

impl ValidAgentSpec {
    /// The URLs the egress policy must approve, with their field names.
    pub fn urls_to_check(&self) -> Vec<(String, String)> {
        let mut urls = Vec::new();
        if let Some(u) = &self.card_url {
            urls.push(("card_url".to_owned(), u.clone()));
        }
        if let Some(card) = &self.card {
            urls.push(("card.url".to_owned(), card.url.clone()));
        }
        if let Some(h) = &self.governance.health_check_endpoint {
            urls.push(("governance.health_check_endpoint".to_owned(), h.clone()));
        }
        urls
    }
}

/// The latest check of the agent's card URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentHealth {
    pub status: HealthStatus,
    /// Why it is not healthy: `timeout`, `connection_refused`, `http_status 500`, `invalid_card …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Content hash of the card the agent serves now (when it served a valid one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_card_hash: Option<String>,
}

/// Whether the card is the approved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// Not approved yet (before `security_review → approved_dev`).
    Unapproved,
    Approved,
    /// The stored card, or the card the agent serves, differs from the approved one.
    ChangedNeedsReview,
}

/// An agent as stored and as read (it holds no credential).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentRecord {
    pub id: Uuid,
    pub path: ServerPath,
    pub card: AgentCard,
    /// Where health checks fetch the card.
    pub card_url: String,
    pub card_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_card_hash: Option<String>,
    pub tags: Vec<String>,
    pub governance: Governance,
    pub lifecycle: Lifecycle,
    pub lifecycle_history: Vec<LifecycleEvent>,
    pub enabled: bool,
    pub health: AgentHealth,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub updated_by: String,
    pub revision: u64,
}

/// An agent as clients read it: the record plus what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: AgentRecord,
    pub card_status: CardStatus,
    /// States reachable in one transition (each needs its own permission).
    pub next_lifecycle_states: Vec<Lifecycle>,
}

impl AgentRecord {
    /// A new record in `draft`, from a validated spec whose path and card are set.
    pub fn create(spec: ValidAgentSpec, actor: &str) -> Result<Self, FieldError> {
        let path = spec
            .path
            .clone()
            .ok_or_else(|| FieldError::new("path", "is required"))?;
        let now = Timestamp::now();
        let mut record = AgentRecord {
            id: Uuid::new_v4(),
            path,
            card: spec
                .card
                .clone()
                .ok_or_else(|| FieldError::new("card", "is required"))?,
            card_url: String::new(),
            card_hash: String::new(),
            approved_card_hash: None,
            tags: Vec::new(),
            governance: spec.governance.clone(),
            lifecycle: Lifecycle::Draft,
            lifecycle_history: Vec::new(),
            enabled: true,
            health: AgentHealth::default(),
            created_at: now,
            updated_at: now,
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
            revision: 1,
        };
        record.apply_spec(spec)?;
        Ok(record)
    }

    /// Replaces the writable fields with `spec` (whose card is set).
    pub fn apply_spec(&mut self, spec: ValidAgentSpec) -> Result<(), FieldError> {
        if let Some(path) = &spec.path
            && path != &self.path
        {
            return Err(FieldError::new(
                "path",
                format!(
                    "cannot be changed (this agent is {:?}); register a new agent instead",
                    self.path.as_str()
                ),
            ));
        }
        let card = spec
            .card
            .ok_or_else(|| FieldError::new("card", "is required"))?;
        self.card_url = match spec.card_url {
            Some(u) => u,
            None => card
                .well_known_url()
                .ok_or_else(|| FieldError::new("card.url", "has no origin"))?,
        };
        self.card_hash = card.content_hash();
        self.card = card;
        self.tags = spec.tags;
        self.governance = spec.governance;
        Ok(())
    }

    /// The writable fields as a spec (the base of a merge patch).
    pub fn to_spec(&self) -> AgentSpec {
        AgentSpec {
            path: Some(self.path.to_string()),
            card: Some(self.card.clone()),
            card_url: Some(self.card_url.clone()),
            tags: self.tags.clone(),
            governance: self.governance.clone(),
        }
    }

    pub fn card_status(&self) -> CardStatus {
        match &self.approved_card_hash {
            None => CardStatus::Unapproved,
            Some(approved) => {
                let served_differs = self
                    .health
                    .served_card_hash
                    .as_ref()
                    .is_some_and(|h| h != approved);
                if &self.card_hash != approved || served_differs {
                    CardStatus::ChangedNeedsReview
                } else {
                    CardStatus::Approved
                }
            }
        }
    }

    /// Lowercased text the list filter `q` matches against.
    pub fn search_text(&self) -> String {
        let skills: Vec<&str> = self.card.skills.iter().map(|s| s.name.as_str()).collect();
        format!(
            "{} {} {} {} {}",
            self.path,
            self.card.name,
            self.card.description,
            self.tags.join(" "),
            skills.join(" ")
        )
        .to_lowercase()
    }

    pub fn view(&self) -> AgentView {
        AgentView {
            agent: self.clone(),
            card_status: self.card_status(),
            next_lifecycle_states: self.lifecycle.next_states(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(extra: Value) -> AgentCard {
        let mut base = json!({
            "name": "Travel planner",
            "description": "Plans trips",
            "url": "https://agents.example/travel/a2a",
            "version": "1.0.0",
            "protocolVersion": "0.3.0",
            "skills": [{"id": "plan", "name": "Plan a trip", "tags": ["travel"]}],
            "somethingNewer": {"ignored": true}
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn bad_cards_name_the_field() {
        let cases = [
            (json!({"name": ""}), "card.name"),
            (json!({"url": "ftp://x/"}), "card.url"),
            (json!({"version": ""}), "card.version"),
            (
                json!({"skills": [{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]}),
                "card.skills[1].id",
            ),
            (json!({"capabilities": [1]}), "card.capabilities"),
            (
                json!({"description": "x".repeat(limits::DESCRIPTION + 1)}),
                "card.description",
            ),
        ];
        for (extra, field) in cases {
            let err = card(extra.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{extra}: {err}");
        }
    }

    #[test]
    fn the_hash_ignores_key_order_and_follows_content() {
        let a = card(json!({})).validate().unwrap();
        let b: AgentCard = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a.content_hash(), b.validate().unwrap().content_hash());
        let c = card(json!({"version": "1.0.1"})).validate().unwrap();
        assert_ne!(a.content_hash(), c.content_hash());
        assert_eq!(
            a.well_known_url().unwrap(),
            "https://agents.example/.well-known/agent-card.json"
        );
    }
}
