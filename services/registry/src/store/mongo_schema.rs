//! The registry's MongoDB/DocumentDB schema, declared once: its collections, their indexes, and a
//! `$jsonSchema` validator per collection that admits every document [`super::mongo`] writes.
//!
//! Two callers use it:
//! - the registry at start ([`create_indexes`]): creates missing indexes, nothing else. It does
//!   not install validators: `collMod` (and `create` with a validator) needs the `dbAdmin`-class
//!   privilege `collMod`, which the registry's application user is not given;
//! - `mcpgw-setup` ([`ensure`]), which runs with the master user: creates missing collections
//!   with their validators, repairs validators that differ, creates missing indexes and rebuilds
//!   an index whose keys or uniqueness differ. Indexes not declared here are left alone.
//!
//! Validators stay within what Amazon DocumentDB 5.0 supports of `$jsonSchema`: `bsonType`,
//! `required`, `properties` and `enum` (no `patternProperties`, no `$` operators inside), with
//! `validationLevel: strict` and `validationAction: error`. Unknown fields are admitted (no
//! `additionalProperties`), so a newer registry adding a field does not break on an older schema.

use std::collections::HashMap;

use futures::TryStreamExt;
use mcpgw_core::domain::Lifecycle;
use mcpgw_core::plan::Change;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error;
use mongodb::options::{CreateCollectionOptions, IndexOptions, ValidationAction, ValidationLevel};
use mongodb::{Database, IndexModel};

pub const SERVERS: &str = "servers";
pub const AGENTS: &str = "agents";
pub const API_KEYS: &str = "api_keys";
pub const AUDIT: &str = "audit";
pub const SCOPES: &str = "scopes";
pub const META: &str = "meta";

/// One index: its name (what [`ensure`] matches on), keys in order, and uniqueness.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: &'static str,
    pub keys: Document,
    pub unique: bool,
}

impl IndexSpec {
    fn new(name: &'static str, keys: Document, unique: bool) -> Self {
        Self { name, keys, unique }
    }

    pub fn model(&self) -> IndexModel {
        IndexModel::builder()
            .keys(self.keys.clone())
            .options(
                IndexOptions::builder()
                    .name(self.name.to_owned())
                    .unique(self.unique)
                    .build(),
            )
            .build()
    }
}

/// One collection: its name, validator (the whole `validator` option) and indexes.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    pub name: &'static str,
    pub validator: Document,
    pub indexes: Vec<IndexSpec>,
}

fn string() -> Document {
    doc! {"bsonType": "string"}
}

/// Revisions, versions and epoch milliseconds: written from `i64`, stored as BSON long.
fn long() -> Document {
    doc! {"bsonType": "long"}
}

fn boolean() -> Document {
    doc! {"bsonType": "bool"}
}

fn array() -> Document {
    doc! {"bsonType": "array"}
}

fn lifecycle() -> Document {
    let states: Vec<&str> = Lifecycle::ALL.iter().map(Lifecycle::as_str).collect();
    doc! {"bsonType": "string", "enum": states}
}

/// `{"$jsonSchema": …}` requiring `required` and typing `properties`.
fn validator(required: &[&str], properties: Document) -> Document {
    doc! {
        "$jsonSchema": {
            "bsonType": "object",
            "required": required,
            "properties": properties,
        }
    }
}

/// Every collection the store uses, with what each stores (see `mongo.rs`: `server_doc`,
/// `agent_doc`, `audit_doc`, `insert_api_key`, `put_scopes`, `bump_policy`, `health_lease`).
pub fn collections() -> Vec<CollectionSpec> {
    let i = IndexSpec::new;
    vec![
        CollectionSpec {
            name: SERVERS,
            validator: validator(
                &[
                    "_id",
                    "id",
                    "revision",
                    "enabled",
                    "lifecycle",
                    "tags",
                    "owner_team",
                    "environment",
                    "search_text",
                    "updated_at",
                    "doc",
                ],
                doc! {
                    "_id": string(),
                    "id": string(),
                    "revision": long(),
                    "enabled": boolean(),
                    "lifecycle": lifecycle(),
                    "tags": array(),
                    "owner_team": string(),
                    "environment": string(),
                    "search_text": string(),
                    "updated_at": string(),
                    "doc": string(),
                    // Written beside `doc` by health checks (JSON text), absent until the first.
                    "health": string(),
                },
            ),
            indexes: vec![
                i("id_unique", doc! {"id": 1}, true),
                i("lifecycle_path", doc! {"lifecycle": 1, "_id": 1}, false),
                i("enabled_path", doc! {"enabled": 1, "_id": 1}, false),
                i("tags_path", doc! {"tags": 1, "_id": 1}, false),
                i("owner_path", doc! {"owner_team": 1, "_id": 1}, false),
                i("environment_path", doc! {"environment": 1, "_id": 1}, false),
                i("updated_at", doc! {"updated_at": 1}, false),
            ],
        },
        CollectionSpec {
            name: AGENTS,
            validator: validator(
                &[
                    "_id",
                    "id",
                    "revision",
                    "enabled",
                    "lifecycle",
                    "tags",
                    "owner_team",
                    "search_text",
                    "doc",
                ],
                doc! {
                    "_id": string(),
                    "id": string(),
                    "revision": long(),
                    "enabled": boolean(),
                    "lifecycle": lifecycle(),
                    "tags": array(),
                    "owner_team": string(),
                    "search_text": string(),
                    "doc": string(),
                    "health": string(),
                },
            ),
            indexes: vec![
                i("id_unique", doc! {"id": 1}, true),
                i("lifecycle_path", doc! {"lifecycle": 1, "_id": 1}, false),
                i("tags_path", doc! {"tags": 1, "_id": 1}, false),
                i("owner_path", doc! {"owner_team": 1, "_id": 1}, false),
            ],
        },
        CollectionSpec {
            name: API_KEYS,
            validator: validator(
                &["_id", "revoked", "doc"],
                doc! {"_id": string(), "revoked": boolean(), "doc": string()},
            ),
            indexes: vec![],
        },
        CollectionSpec {
            name: AUDIT,
            validator: validator(
                &[
                    "_id",
                    "at",
                    "actor",
                    "action",
                    "resource_type",
                    "resource_id",
                    "doc",
                ],
                doc! {
                    "_id": string(),
                    "at": string(),
                    "actor": string(),
                    "action": string(),
                    "resource_type": string(),
                    "resource_id": string(),
                    "doc": string(),
                    // Copied from gateway-reported records' details, for filtering.
                    "tool": string(),
                    "decision": string(),
                },
            ),
            indexes: vec![
                i(
                    "resource",
                    doc! {"resource_type": 1, "resource_id": 1, "_id": -1},
                    false,
                ),
                i("actor", doc! {"actor": 1, "_id": -1}, false),
                i("action", doc! {"action": 1, "_id": -1}, false),
                i("at", doc! {"at": 1}, false),
            ],
        },
        CollectionSpec {
            name: SCOPES,
            validator: validator(&["_id", "doc"], doc! {"_id": string(), "doc": string()}),
            indexes: vec![],
        },
        CollectionSpec {
            // Singletons: `policy_version` {value} and `health_lease` {holder, until}.
            name: META,
            validator: validator(
                &["_id"],
                doc! {
                    "_id": string(),
                    "value": long(),
                    "holder": string(),
                    "until": long(),
                },
            ),
            indexes: vec![],
        },
    ]
}

/// Creates the declared indexes that are missing; what the registry runs at every start.
/// (An index of the same name with other keys makes this fail; `mcpgw-setup` repairs it.)
pub async fn create_indexes(db: &Database) -> Result<(), Error> {
    for c in collections() {
        if c.indexes.is_empty() {
            continue;
        }
        let models = c.indexes.iter().map(IndexSpec::model).collect::<Vec<_>>();
        db.collection::<Document>(c.name)
            .create_indexes(models)
            .await?;
    }
    Ok(())
}

/// Brings `db` to this schema (see the module docs); with `dry_run`, only reports what it would
/// change. One [`Change`] per collection (`collection servers`) and per index
/// (`index servers.lifecycle_path`).
pub async fn ensure(db: &Database, dry_run: bool) -> Result<Vec<Change>, Error> {
    let existing: HashMap<String, CreateCollectionOptions> = db
        .list_collections()
        .await?
        .map_ok(|c| (c.name, c.options))
        .try_collect()
        .await?;

    let mut changes = Vec::new();
    for c in collections() {
        let object = format!("collection {}", c.name);
        let exists = match existing.get(c.name) {
            None => {
                changes.push(Change::create(object));
                if !dry_run {
                    db.create_collection(c.name)
                        .validator(c.validator.clone())
                        .validation_level(ValidationLevel::Strict)
                        .validation_action(ValidationAction::Error)
                        .await?;
                }
                false
            }
            Some(options) => {
                match validator_differences(options, &c.validator) {
                    None => changes.push(Change::unchanged(object)),
                    Some(detail) => {
                        changes.push(Change::update(object, detail));
                        if !dry_run {
                            db.run_command(doc! {
                                "collMod": c.name,
                                "validator": c.validator.clone(),
                                "validationLevel": "strict",
                                "validationAction": "error",
                            })
                            .await?;
                        }
                    }
                }
                true
            }
        };
        changes.extend(ensure_indexes(db, &c, exists, dry_run).await?);
    }
    Ok(changes)
}

/// What differs between a collection's options and the declared validator, if anything.
fn validator_differences(
    options: &CreateCollectionOptions,
    validator: &Document,
) -> Option<String> {
    let mut differs = Vec::new();
    match &options.validator {
        Some(v) if v == validator => {}
        Some(v) if !v.is_empty() => differs.push("validator differs".to_owned()),
        _ => differs.push("no validator".to_owned()),
    }
    // Absent means the server's default, which is what is wanted (strict, error).
    if !matches!(
        options.validation_level,
        None | Some(ValidationLevel::Strict)
    ) {
        differs.push(format!(
            "validationLevel {:?}, want strict",
            options.validation_level
        ));
    }
    if !matches!(
        options.validation_action,
        None | Some(ValidationAction::Error)
    ) {
        differs.push(format!(
            "validationAction {:?}, want error",
            options.validation_action
        ));
    }
    (!differs.is_empty()).then(|| differs.join(", "))
}

/// Index keys in order with numeric directions compared by value (the server may hand back an
/// `Int32` 1 as `Double` 1.0 or `Int64`).
fn same_keys(a: &Document, b: &Document) -> bool {
    let number = |v: &Bson| match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    };
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (number(va), number(vb)) {
                    (Some(x), Some(y)) => x == y,
                    _ => va == vb,
                }
        })
}

async fn ensure_indexes(
    db: &Database,
    c: &CollectionSpec,
    collection_exists: bool,
    dry_run: bool,
) -> Result<Vec<Change>, Error> {
    let collection = db.collection::<Document>(c.name);
    let present: Vec<IndexModel> = if collection_exists {
        collection.list_indexes().await?.try_collect().await?
    } else {
        Vec::new()
    };
    let mut changes = Vec::new();
    for index in &c.indexes {
        let object = format!("index {}.{}", c.name, index.name);
        let found = present.iter().find(|m| {
            m.options
                .as_ref()
                .and_then(|o| o.name.as_deref())
                .is_some_and(|n| n == index.name)
        });
        match found {
            None => {
                changes.push(Change::create(object));
                if !dry_run {
                    collection.create_index(index.model()).await?;
                }
            }
            Some(m) => {
                let unique = m.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
                if same_keys(&m.keys, &index.keys) && unique == index.unique {
                    changes.push(Change::unchanged(object));
                    continue;
                }
                changes.push(Change::update(
                    object,
                    format!(
                        "keys {} unique {unique}, want keys {} unique {}; rebuilt",
                        m.keys, index.keys, index.unique
                    ),
                ));
                if !dry_run {
                    collection.drop_index(index.name).await?;
                    collection.create_index(index.model()).await?;
                }
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_compare_by_value_and_order() {
        assert!(same_keys(
            &doc! {"a": 1, "_id": -1},
            &doc! {"a": 1.0, "_id": -1_i64}
        ));
        assert!(!same_keys(
            &doc! {"a": 1, "_id": 1},
            &doc! {"_id": 1, "a": 1}
        ));
        assert!(!same_keys(&doc! {"a": 1}, &doc! {"a": -1}));
    }

    #[test]
    fn every_collection_is_declared_once() {
        let names: Vec<&str> = collections().iter().map(|c| c.name).collect();
        assert_eq!(names, [SERVERS, AGENTS, API_KEYS, AUDIT, SCOPES, META]);
    }
}
