//! Importing scope files as users already have them: JSON or YAML, in three shapes.
//!
//! - one document: `{"_id": "x", "group_mappings": [...], "server_access": [...], ...}`;
//! - several: a list of documents, or JSON lines (one document per line, as `mongoexport`
//!   writes them);
//! - the legacy `scopes.yml`: top-level `group_mappings:` (group → scope names), `UI-Scopes:`
//!   (scope → UI action → resources) and one key per scope holding its list of rules. It is
//!   converted to one document per scope.
//!
//! Rules of this module: the input is bounded ([`MAX_IMPORT_BYTES`], [`MAX_DOCUMENTS`], a YAML
//! node budget that also stops alias bombs); the first error wins and names its path, with the
//! document index in front (`[2].server_access[3].methods[0]`); everything accepted but changed
//! or ignored is reported as a [`PolicyNote`]. Nothing is stored here: the caller decides.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::document::{
    AccessEntry, PolicyNote, ScopeDocument, check_group, check_scope_name, expect_object, join,
    key_segment, limits, read_access_list, read_strings, read_ui,
};
use crate::validate::FieldError;

/// Largest file accepted, in bytes.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Most documents in one file.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Most YAML nodes (scalars, lists, maps, alias expansions included) in one file.
const MAX_YAML_NODES: usize = 1_000_000;

/// Why a file could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the file is {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    /// Not JSON or YAML at all. `message` names the line and column.
    #[error("not valid {format}: {message}")]
    Syntax {
        format: SourceFormat,
        message: String,
    },
    /// Well-formed but not a valid scope file; the field error names the path.
    #[error("{0}")]
    Invalid(#[from] FieldError),
}

/// The syntax of an imported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Json,
    Yaml,
}

impl std::fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceFormat::Json => "JSON",
            SourceFormat::Yaml => "YAML",
        })
    }
}

impl From<PolicyError> for crate::error::ApiError {
    fn from(e: PolicyError) -> Self {
        use axum::http::StatusCode;
        match e {
            PolicyError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            PolicyError::Syntax {
                format: SourceFormat::Json,
                ..
            } => Self::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()),
            PolicyError::Syntax {
                format: SourceFormat::Yaml,
                ..
            } => Self::new(StatusCode::BAD_REQUEST, "invalid_yaml", e.to_string()),
            PolicyError::Invalid(field) => field.into(),
        }
    }
}

/// Which shape the file had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportShape {
    /// One document.
    Document,
    /// A list of documents, or JSON lines.
    Documents,
    /// The legacy `scopes.yml` mapping, converted to documents.
    LegacyScopes,
}

/// The documents read from a file, and what the reader changed or ignored on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub shape: ImportShape,
    pub documents: Vec<ScopeDocument>,
    /// Dropped fields, conversions and lint findings; paths start with the document index.
    pub notes: Vec<PolicyNote>,
}

/// Reads a JSON file: one document, a list, JSON lines, or the legacy mapping in JSON.
pub fn parse_json(text: &str) -> Result<Import, PolicyError> {
    check_size(text)?;
    let syntax = |e: serde_json::Error| PolicyError::Syntax {
        format: SourceFormat::Json,
        message: e.to_string(),
    };
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let first = match values.next() {
        None => return Err(FieldError::new("", "the file is empty").into()),
        Some(v) => v.map_err(syntax)?,
    };
    match values.next() {
        None => from_value(first),
        Some(second) => {
            // JSON lines: every value is one document.
            let mut docs = vec![first, second.map_err(syntax)?];
            for v in values {
                if docs.len() >= MAX_DOCUMENTS {
                    return Err(too_many(docs.len() + 1).into());
                }
                docs.push(v.map_err(syntax)?);
            }
            read_documents(&docs)
        }
    }
}

/// Reads a YAML file: one document, a list, or the legacy `scopes.yml` mapping.
pub fn parse_yaml(text: &str) -> Result<Import, PolicyError> {
    check_size(text)?;
    let mut options = serde_saphyr::Options::default();
    // Plain messages with line and column: the snippet rendering is for terminals.
    options.with_snippet = false;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    options.budget = Some(budget);
    let value: Value =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| PolicyError::Syntax {
            format: SourceFormat::Yaml,
            message: e.to_string(),
        })?;
    from_value(value)
}

/// Reads an already-parsed value (e.g. a JSON request body) with the same rules.
pub fn from_value(value: Value) -> Result<Import, PolicyError> {
    match &value {
        Value::Null => Err(FieldError::new("", "the file is empty").into()),
        Value::Array(items) => read_documents(items),
        Value::Object(obj) if is_document(obj) => {
            let (doc, notes) = ScopeDocument::from_value(&value)?;
            let mut notes = notes;
            notes.extend(doc.lint());
            Ok(Import {
                shape: ImportShape::Document,
                documents: vec![doc],
                notes,
            })
        }
        Value::Object(obj) => read_legacy(obj),
        other => Err(FieldError::new(
            "",
            format!(
                "expected a scope document, a list of documents or a legacy scopes mapping, not {}",
                match other {
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "a boolean",
                }
            ),
        )
        .into()),
    }
}

fn check_size(text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_IMPORT_BYTES {
        return Err(PolicyError::TooLarge {
            size: text.len(),
            max: MAX_IMPORT_BYTES,
        });
    }
    Ok(())
}

fn too_many(count: usize) -> FieldError {
    FieldError::new(
        "",
        format!("has {count} documents or more; at most {MAX_DOCUMENTS} are accepted"),
    )
}

/// A document names itself; the legacy mapping has no `name`/`_id` and a *map* of groups.
fn is_document(obj: &Map<String, Value>) -> bool {
    obj.contains_key("name")
        || obj.contains_key("_id")
        || obj.contains_key("server_access")
        || obj.contains_key("ui_permissions")
        || matches!(obj.get("group_mappings"), Some(Value::Array(_)))
}

fn read_documents(items: &[Value]) -> Result<Import, PolicyError> {
    if items.is_empty() {
        return Err(FieldError::new("", "the list holds no scope documents").into());
    }
    if items.len() > MAX_DOCUMENTS {
        return Err(too_many(items.len()).into());
    }
    let mut documents: Vec<ScopeDocument> = Vec::with_capacity(items.len());
    let mut notes = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("[{i}]");
        let (doc, doc_notes) = ScopeDocument::from_value(item).map_err(|e| e.within(&at))?;
        if let Some(first) = seen.insert(doc.name().to_owned(), i) {
            return Err(FieldError::new(
                format!("{at}.name"),
                format!(
                    "scope {:?} is defined twice (also at [{first}])",
                    doc.name()
                ),
            )
            .into());
        }
        notes.extend(doc_notes.into_iter().map(|n| n.within(&at)));
        notes.extend(doc.lint().into_iter().map(|n| n.within(&at)));
        documents.push(doc);
    }
    Ok(Import {
        shape: ImportShape::Documents,
        documents,
        notes,
    })
}

const LEGACY_GROUPS: &str = "group_mappings";
const LEGACY_UI: &str = "UI-Scopes";

/// Converts the legacy `scopes.yml` mapping to one document per scope name.
///
/// A scope's document gets: its rules (the top-level key of that name), its UI permissions
/// (`UI-Scopes.<scope>`) and every group whose `group_mappings` list names it. A scope that a
/// group names but that has neither rules nor UI permissions still gets an (empty) document, so
/// the mapping is kept; a note says so.
fn read_legacy(obj: &Map<String, Value>) -> Result<Import, PolicyError> {
    let mut notes = Vec::new();
    let mut scopes = LegacyScopes::default();

    // Scopes with rules, in file order.
    for (key, value) in obj {
        if key == LEGACY_GROUPS || key == LEGACY_UI {
            continue;
        }
        let field = join("", &key_segment(key));
        check_scope_name(&field, key)?;
        if !value.is_array() {
            return Err(FieldError::new(
                field,
                "must be a list of rules (in a legacy scopes file every top-level key other than \
                 `group_mappings` and `UI-Scopes` is a scope)",
            )
            .into());
        }
        let slot = scopes.slot(key);
        slot.rules = read_access_list(&field, value, &mut notes)?;
        slot.has_rules = true;
    }

    if let Some(ui) = obj.get(LEGACY_UI) {
        let ui = expect_object(LEGACY_UI, ui)?;
        for (scope, actions) in ui {
            let field = join(LEGACY_UI, &key_segment(scope));
            check_scope_name(&field, scope)?;
            let slot = scopes.slot(scope);
            slot.ui = read_ui(&field, actions)?;
            slot.has_ui = true;
        }
    }

    if let Some(groups) = obj.get(LEGACY_GROUPS) {
        let groups = expect_object(LEGACY_GROUPS, groups)?;
        for (group, names) in groups {
            let field = join(LEGACY_GROUPS, &key_segment(group));
            check_group(&field, group)?;
            let names = read_strings(&field, names, limits::GROUPS_PER_DOCUMENT, false)?;
            for (i, scope) in names.iter().enumerate() {
                check_scope_name(&format!("{field}[{i}]"), scope)?;
                let slot = scopes.slot(scope);
                if !slot.groups.contains(group) {
                    slot.groups.push(group.clone());
                }
            }
        }
    }

    if scopes.order.is_empty() {
        return Err(FieldError::new("", "the file defines no scopes").into());
    }
    let mut documents = Vec::with_capacity(scopes.order.len());
    for name in &scopes.order {
        let p = scopes
            .parts
            .remove(name)
            .expect("every ordered name has parts");
        let rules_at = join("", &key_segment(name));
        let ui_at = join(LEGACY_UI, &key_segment(name));
        if !p.has_rules && !p.has_ui {
            notes.push(PolicyNote::new(
                LEGACY_GROUPS,
                format!(
                    "scope {name:?} is named in group_mappings but has no rules or UI permissions; \
                     an empty document keeps the mapping"
                ),
            ));
        }
        // Rules and UI permissions were checked as they were read; what is left to check here
        // (group names) is named by the document path, which the caller maps to the file.
        // The order keys are read in depends on how serde_json is built (`preserve_order` may
        // be on through feature unification), so sort to make imports deterministic.
        let mut groups = p.groups;
        groups.sort();
        let doc = ScopeDocument::new(name.clone(), groups, p.rules, p.ui).map_err(|e| {
            FieldError::new(LEGACY_GROUPS, format!("mapping to scope {name:?}: {e}"))
        })?;
        // Lint paths are relative to a document; point them back at the file.
        notes.extend(doc.lint().into_iter().map(|n| {
            let field = if let Some(rest) = n.field.strip_prefix("server_access") {
                format!("{rules_at}{rest}")
            } else if let Some(rest) = n.field.strip_prefix("ui_permissions") {
                format!("{ui_at}{rest}")
            } else {
                n.field
            };
            PolicyNote::new(field, n.message)
        }));
        documents.push(doc);
    }
    documents.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Import {
        shape: ImportShape::LegacyScopes,
        documents,
        notes,
    })
}

/// The parts of each legacy scope, gathered from the three places a scope appears.
#[derive(Default)]
struct LegacyScopes {
    /// Scope names in order of first appearance.
    order: Vec<String>,
    parts: BTreeMap<String, LegacyParts>,
}

#[derive(Default)]
struct LegacyParts {
    groups: Vec<String>,
    rules: Vec<AccessEntry>,
    ui: BTreeMap<String, Vec<String>>,
    has_rules: bool,
    has_ui: bool,
}

impl LegacyScopes {
    fn slot(&mut self, name: &str) -> &mut LegacyParts {
        if !self.parts.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.parts.entry(name.to_owned()).or_default()
    }
}
