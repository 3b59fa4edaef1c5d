//! The database steps (documentdb, migrations, scopes) against real MongoDB (a replica set) and
//! PostgreSQL: each test has its own MongoDB database and its own PostgreSQL database.

use std::time::Duration;

use auth_server::store::postgres::POSTGRES_MIGRATOR;
use futures::TryStreamExt;
use mcpgw_core::auth::{Permission, PrincipalKind};
use mcpgw_core::domain::{AgentHealth, AgentRecord, AgentSpec, Health, ServerRecord, ServerSpec};
use mcpgw_core::plan::Action;
use mcpgw_core::policy::ScopeDocument;
use mcpgw_core::secrets::Keyring;
use mcpgw_core::time::Timestamp;
use mcpgw_setup::error::FailureClass;
use mcpgw_setup::inputs::{Inputs, Overrides, RawInputs};
use mcpgw_setup::spec::{DEFAULT_SPEC, Spec};
use mcpgw_setup::steps::scopes::ACTOR;
use mcpgw_setup::{Report, Step, StepStatus};
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ValidationAction, ValidationLevel};
use registry::config::{SqliteSync, StoreConfig};
use registry::store::mongo::MongoStore;
use registry::store::mongo_schema;
use registry::store::{ApiKeyRecord, AuditFilter, AuditRecord, RegistryStore};
use serde_json::json;
use sqlx::Connection as _;

use crate::support::{PgDatabase, Run, assert_ok, mongodb_url, start_registry, unique};

async fn mongo_client() -> mongodb::Client {
    mongodb::Client::with_uri_str(mongodb_url())
        .await
        .expect("MCPGW_TEST_MONGODB_URL is a MongoDB URL")
}

/// One test's databases, and a run of the three database steps on them.
struct Fixture {
    mongo: mongodb::Database,
    pg: PgDatabase,
    secrets: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let name = unique("setup").replace('-', "_");
        Self {
            mongo: mongo_client().await.database(&name),
            pg: PgDatabase::create().await,
            secrets: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self) -> Run {
        Run::databases(
            &mongodb_url(),
            self.mongo.name(),
            &self.pg.url,
            self.secrets.path(),
        )
    }

    /// The registry's store on this test's database, opened without writing.
    async fn store(&self) -> MongoStore {
        MongoStore::connect(&mongodb_url(), &store_config(self.mongo.name()))
            .await
            .expect("the registry store opens")
    }

    async fn collection_names(&self) -> Vec<String> {
        let mut names = self.mongo.list_collection_names().await.unwrap();
        names.sort();
        names
    }

    async fn finish(self) {
        let _ = self.mongo.drop().await;
    }
}

fn store_config(database: &str) -> StoreConfig {
    StoreConfig {
        url: String::new(),
        pool_size: 2,
        sqlite_synchronous: SqliteSync::Full,
        backend: registry::config::RegistryStoreConfig {
            mongo_database: database.to_owned(),
            mongo_server_selection_timeout_ms: 10_000,
            catalog_cache_ms: 0,
        },
    }
}

/// The built-in spec's scope documents (group_mappings filled from its groups).
fn spec_documents() -> Vec<ScopeDocument> {
    let inputs = Inputs::resolve(&RawInputs::default(), Overrides::default()).unwrap();
    let spec = Spec::load(DEFAULT_SPEC, "built-in", &inputs, false).unwrap();
    let mut docs = spec.registry_scope_documents();
    docs.sort_by(|a, b| a.name().cmp(b.name()));
    docs
}

/// `(action, object)` of every create and update in the run.
fn changes(report: &Report) -> Vec<(Action, String)> {
    let mut c: Vec<(Action, String)> = report
        .changes()
        .into_iter()
        .map(|c| (c.action, c.object.clone()))
        .collect();
    c.sort();
    c
}

fn objects(report: &Report, step: Step) -> Vec<(Action, String)> {
    let mut c: Vec<(Action, String)> = report
        .step(step)
        .unwrap_or_else(|| panic!("{} ran", step.name()))
        .changes
        .iter()
        .map(|c| (c.action, c.object.clone()))
        .collect();
    c.sort();
    c
}

/// What the schema declares, as the documentdb step names it.
fn schema_objects() -> Vec<String> {
    let mut all = Vec::new();
    for c in mongo_schema::collections() {
        all.push(format!("collection {}", c.name));
        for i in &c.indexes {
            all.push(format!("index {}.{}", c.name, i.name));
        }
    }
    all.sort();
    all
}

fn migration_objects() -> Vec<String> {
    POSTGRES_MIGRATOR
        .iter()
        .map(|m| format!("migration {:04} {}", m.version, m.description))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_creates_collections_indexes_validators_migrations_and_scopes() {
    let f = Fixture::new().await;
    let run = f.run();
    let report = run.run().await;
    assert_ok(&report, &run);

    // Every declared object was created, and the report says so.
    let created = |step| {
        objects(&report, step)
            .into_iter()
            .map(|(a, o)| {
                assert_eq!(a, Action::Create, "{o}");
                o
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(created(Step::Documentdb), schema_objects());
    assert_eq!(created(Step::Migrations), migration_objects());
    let mut scope_objects: Vec<String> = spec_documents()
        .iter()
        .map(|d| format!("scope document {}", d.name()))
        .collect();
    scope_objects.sort();
    assert_eq!(created(Step::Scopes), scope_objects);
    assert_eq!(
        report.step(Step::Documentdb).unwrap().status,
        StepStatus::Changed
    );

    // Collections with their validators, read back with listCollections.
    let specs: Vec<mongodb::results::CollectionSpecification> = f
        .mongo
        .list_collections()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for c in mongo_schema::collections() {
        let found = specs
            .iter()
            .find(|s| s.name == c.name)
            .unwrap_or_else(|| panic!("collection {} exists", c.name));
        assert_eq!(
            found.options.validator.as_ref(),
            Some(&c.validator),
            "{}",
            c.name
        );
        assert_eq!(
            found.options.validation_level,
            Some(ValidationLevel::Strict)
        );
        assert_eq!(
            found.options.validation_action,
            Some(ValidationAction::Error)
        );
        // Indexes, read back with listIndexes.
        let indexes: Vec<mongodb::IndexModel> = f
            .mongo
            .collection::<Document>(c.name)
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for want in &c.indexes {
            let have = indexes
                .iter()
                .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(want.name))
                .unwrap_or_else(|| panic!("index {}.{} exists", c.name, want.name));
            assert_eq!(have.keys, want.keys, "{}.{}", c.name, want.name);
            assert_eq!(
                have.options
                    .as_ref()
                    .and_then(|o| o.unique)
                    .unwrap_or(false),
                want.unique,
                "{}.{}",
                c.name,
                want.name
            );
        }
    }

    // Migrations: one successful row per migration, with this binary's checksum.
    let mut conn = f.pg.connect().await;
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    let want: Vec<(i64, Vec<u8>, bool)> = POSTGRES_MIGRATOR
        .iter()
        .map(|m| (m.version, m.checksum.to_vec(), true))
        .collect();
    assert_eq!(rows, want);

    // Scope documents: the spec's, with group_mappings from the groups, at policy version 1.
    let store = f.store().await;
    let policy = store.policy().await.unwrap();
    assert_eq!(policy.version, 1);
    let mut stored = policy.documents.clone();
    stored.sort_by(|a, b| a.name().cmp(b.name()));
    assert_eq!(stored, spec_documents());
    let read = stored
        .iter()
        .find(|d| d.name() == "mcp-servers-unrestricted/read")
        .unwrap();
    let mut holders = read.group_mappings().to_vec();
    holders.sort();
    assert_eq!(
        holders,
        [
            "mcp-registry-users",
            "mcp-servers-unrestricted",
            "mcpgw-admins"
        ]
    );

    // One audit record for the one write.
    let audit = store
        .list_audit(
            &AuditFilter {
                action: Some("scope.put".to_owned()),
                ..AuditFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let a = &audit[0];
    assert_eq!(a.actor, ACTOR);
    assert_eq!(a.actor_kind, PrincipalKind::Service);
    assert_eq!(a.resource_type, "scope");
    let mut named: Vec<&str> = a.resource_id.split(',').collect();
    named.sort();
    let mut want_names: Vec<String> = spec_documents()
        .iter()
        .map(|d| d.name().to_owned())
        .collect();
    want_names.sort();
    assert_eq!(named, want_names);
    assert_eq!(a.revision_after, Some(1));
    assert_eq!(
        a.details["documents"].as_array().unwrap().len(),
        want_names.len()
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_changes_nothing() {
    let f = Fixture::new().await;
    let run = f.run();
    let first = run.run().await;
    assert_ok(&first, &run);
    assert!(!first.changes().is_empty());

    let again = f.run();
    let second = again.run().await;
    assert_ok(&second, &again);
    assert_eq!(changes(&second), vec![], "{}", again.captured.text());
    assert_eq!(
        second.tally.unchanged,
        first.tally.created + first.tally.updated
    );
    for step in [Step::Documentdb, Step::Migrations, Step::Scopes] {
        assert_eq!(second.step(step).unwrap().status, StepStatus::Ok);
    }
    // No second policy write: the version stays where the first run left it.
    assert_eq!(f.store().await.policy().await.unwrap().version, 1);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_writes_nothing() {
    let f = Fixture::new().await;
    let mut run = f.run();
    run.dry_run = true;
    let report = run.run().await;
    assert_ok(&report, &run);
    for step in [Step::Documentdb, Step::Migrations, Step::Scopes] {
        let r = report.step(step).unwrap();
        assert_eq!(r.status, StepStatus::Planned, "{}", step.name());
        assert!(
            r.changes.iter().all(|c| c.action == Action::Create),
            "{:?}",
            r.changes
        );
    }
    let planned: Vec<String> = objects(&report, Step::Documentdb)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(planned, schema_objects());
    assert_eq!(
        report.step(Step::Scopes).unwrap().changes.len(),
        spec_documents().len()
    );
    assert!(
        run.captured.text().contains("nothing was changed"),
        "{}",
        run.captured.text()
    );

    assert_eq!(f.collection_names().await, Vec::<String>::new());
    assert!(!f.pg.has_migrations_table().await);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_and_repaired() {
    let f = Fixture::new().await;
    let run = f.run();
    assert_ok(&run.run().await, &run);

    // Drift: an index dropped, a validator removed, a seeded document edited.
    f.mongo
        .collection::<Document>("servers")
        .drop_index("lifecycle_path")
        .await
        .unwrap();
    f.mongo
        .run_command(doc! {"collMod": "audit", "validator": {}})
        .await
        .unwrap();
    let store = f.store().await;
    let original = spec_documents()
        .into_iter()
        .find(|d| d.name() == "mcp-registry-user")
        .unwrap();
    let mut edited = serde_json::to_value(&original).unwrap();
    edited["group_mappings"] = json!(["someone-else"]);
    edited["server_access"] = json!([{"server": "weather", "methods": ["initialize"]}]);
    let (edited, _) = ScopeDocument::from_value(&edited).unwrap();
    let audit = AuditRecord::new(
        "test",
        PrincipalKind::User,
        "scope.put",
        "scope",
        edited.name(),
        json!({}),
    );
    store.put_scopes(&[edited], false, &audit).await.unwrap();

    let repair = f.run();
    let report = repair.run().await;
    assert_ok(&report, &repair);
    assert_eq!(
        changes(&report),
        vec![
            (Action::Create, "index servers.lifecycle_path".to_owned()),
            (Action::Update, "collection audit".to_owned()),
            (
                Action::Update,
                "scope document mcp-registry-user".to_owned()
            ),
        ],
        "{}",
        repair.captured.text()
    );
    let detail = |object: &str| {
        report
            .changes()
            .into_iter()
            .find(|c| c.object == object)
            .and_then(|c| c.detail.clone())
            .unwrap_or_default()
    };
    assert_eq!(detail("collection audit"), "no validator");
    assert_eq!(
        detail("scope document mcp-registry-user"),
        "group_mappings, server_access differ"
    );

    // Restored.
    let indexes = f
        .mongo
        .collection::<Document>("servers")
        .list_index_names()
        .await
        .unwrap();
    assert!(
        indexes.contains(&"lifecycle_path".to_owned()),
        "{indexes:?}"
    );
    let audit_spec = f
        .mongo
        .list_collections()
        .filter(doc! {"name": "audit"})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let audit_validator = mongo_schema::collections()
        .into_iter()
        .find(|c| c.name == "audit")
        .unwrap()
        .validator;
    assert_eq!(audit_spec[0].options.validator, Some(audit_validator));
    let restored = store.policy().await.unwrap();
    assert!(restored.documents.contains(&original));

    let third = f.run();
    let report = third.run().await;
    assert_ok(&report, &third);
    assert_eq!(changes(&report), vec![], "{}", third.captured.text());
    f.finish().await;
}

fn server_record(path: &str) -> ServerRecord {
    let spec: ServerSpec = serde_json::from_value(json!({
        "path": path, "name": path,
        "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
        "tags": ["search"],
        "governance": {"owner_team": "platform"}
    }))
    .unwrap();
    let keyring = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
    ServerRecord::create(spec.validate().unwrap(), &keyring, "test", true).unwrap()
}

fn agent_record(path: &str) -> AgentRecord {
    let spec: AgentSpec = serde_json::from_value(json!({
        "path": path,
        "card": {
            "name": path,
            "description": "Plans business travel",
            "url": "http://127.0.0.1:9/a2a",
            "version": "1.0.0",
            "protocolVersion": "0.3.0",
            "capabilities": {},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["application/json"],
            "skills": [{"id": "book", "name": "Book", "description": "Books", "tags": ["travel"]}]
        },
        "tags": ["travel"],
        "governance": {"owner_team": "platform"}
    }))
    .unwrap();
    AgentRecord::create(spec.validate().unwrap(), "test").unwrap()
}

fn audit(action: &str, resource_type: &str, resource_id: &str) -> AuditRecord {
    AuditRecord::new(
        "test",
        PrincipalKind::User,
        action,
        resource_type,
        resource_id,
        json!({}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_works_under_the_validators() {
    let f = Fixture::new().await;
    let run = f.run();
    assert_ok(&run.run().await, &run);

    // The registry starts on the database (its start creates indexes, which exist) and a
    // server registers through its API.
    let (running, _dir) = start_registry(f.mongo.name()).await;
    let key = running
        .bootstrap_key
        .clone()
        .expect("first start makes a key");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("http://{}/api/v1/servers", running.addr))
        .bearer_auth(&key)
        .json(&json!({
            "path": "via-api",
            "name": "Via API",
            "description": "Looks things up",
            "tags": ["search"],
            "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
            "governance": {"owner_team": "platform"}
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 201, "{}", response.text().await.unwrap_or_default());
    running.stop().await;

    // Every write method of the store, directly.
    let store = MongoStore::open(&mongodb_url(), &store_config(f.mongo.name()))
        .await
        .expect("open (which creates indexes) succeeds on the set-up database");
    let mut server = server_record("direct");
    store
        .insert_server(&server, &audit("server.create", "server", "direct"))
        .await
        .unwrap();
    server.revision += 1;
    server.lifecycle = mcpgw_core::domain::Lifecycle::Submitted;
    server.updated_at = Timestamp::now();
    store
        .update_server(&server, 1, &audit("server.update", "server", "direct"))
        .await
        .unwrap();
    store
        .update_health(&[(server.path.clone(), Health::default())])
        .await
        .unwrap();
    store
        .delete_server(&server.path, 2, &audit("server.delete", "server", "direct"))
        .await
        .unwrap();

    let mut agent = agent_record("agent");
    store
        .insert_agent(&agent, &audit("agent.create", "agent", "agent"))
        .await
        .unwrap();
    agent.revision += 1;
    store
        .update_agent(&agent, 1, &audit("agent.update", "agent", "agent"))
        .await
        .unwrap();
    store
        .update_agent_health(&agent.path, &AgentHealth::default())
        .await
        .unwrap();
    store
        .delete_agent(&agent.path, 2, &audit("agent.delete", "agent", "agent"))
        .await
        .unwrap();

    let api_key = ApiKeyRecord {
        id: "k_test".to_owned(),
        name: "test".to_owned(),
        secret_hash: "00".repeat(32),
        permissions: vec![Permission::PoliciesWrite],
        created_by: "test".to_owned(),
        created_at: Timestamp::now(),
        expires_at: None,
        revoked_at: None,
    };
    store
        .insert_api_key(&api_key, &audit("api_key.create", "api_key", "k_test"))
        .await
        .unwrap();
    store
        .revoke_api_key(
            "k_test",
            Timestamp::now(),
            &audit("api_key.revoke", "api_key", "k_test"),
        )
        .await
        .unwrap();

    let extra = ScopeDocument::from_value(
        &json!({"name": "extra", "group_mappings": ["g"], "server_access": []}),
    )
    .unwrap()
    .0;
    store
        .put_scopes(&[extra], false, &audit("scope.put", "scope", "extra"))
        .await
        .unwrap();
    store
        .delete_scope("extra", &audit("scope.delete", "scope", "extra"))
        .await
        .unwrap();
    let inserted = store
        .insert_audit_batch(&[audit("mcp.tools/call", "server", "direct")])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    assert!(
        store
            .health_lease("test-holder", Duration::from_secs(30))
            .await
            .unwrap()
    );

    // A validator bites: a server without its required fields is refused.
    let refused = f
        .mongo
        .collection::<Document>("servers")
        .insert_one(doc! {"_id": "x"})
        .await
        .expect_err("a document missing required fields is refused");
    match refused.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(we)) => {
            assert_eq!(we.code, 121, "DocumentValidationFailure: {we:?}")
        }
        other => panic!("expected a document validation error, got {other:?}"),
    }
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_migration_that_changed_or_is_unknown_stops_the_run() {
    let f = Fixture::new().await;
    let run = f.run();
    assert_ok(&run.run().await, &run);
    let version = POSTGRES_MIGRATOR.iter().next().unwrap().version;

    let mut conn = f.pg.connect().await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = decode('00', 'hex') WHERE version = $1")
        .bind(version)
        .execute(&mut conn)
        .await
        .unwrap();
    let changed = f.run();
    let report = changed.run().await;
    let error = report.error.as_ref().expect("the run fails");
    assert_eq!(error.class, FailureClass::Apply, "{error}");
    assert!(
        error.message.contains(&format!("migration {version} ")),
        "{error}"
    );
    assert!(error.message.contains("checksum"), "{error}");
    assert!(
        error
            .hint
            .as_deref()
            .unwrap_or_default()
            .contains("newer binary"),
        "{error}"
    );
    // It stopped at the migrations step: the scopes step did not run.
    assert!(report.step(Step::Scopes).is_none());

    // Restored, plus a migration this binary does not know.
    let checksum = POSTGRES_MIGRATOR.iter().next().unwrap().checksum.to_vec();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2")
        .bind(checksum)
        .bind(version)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999999, 'from the future', TRUE, decode('00', 'hex'), 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    let unknown = f.run();
    let report = unknown.run().await;
    let error = report.error.expect("the run fails");
    assert_eq!(error.class, FailureClass::Apply, "{error}");
    assert!(error.message.contains("migration 99999999"), "{error}");
    assert!(
        error.hint.as_deref().unwrap_or_default().contains("newer"),
        "{error}"
    );
    f.finish().await;
}

/// A MongoDB URL for `user:password`, authenticating against `database`.
fn mongodb_url_with(user: &str, password: &str, database: &str) -> String {
    let mut url = url::Url::parse(&mongodb_url()).expect("MCPGW_TEST_MONGODB_URL is a URL");
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.query_pairs_mut().append_pair("authSource", database);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unreachable_databases_change_nothing() {
    // The test mongod runs without --auth, but it still checks credentials a client presents:
    // a user created here, given the wrong password, is refused.
    let f = Fixture::new().await;
    let user = unique("setup_user");
    f.mongo
        .run_command(doc! {"createUser": &user, "pwd": "right-password", "roles": []})
        .await
        .unwrap();
    let mut run = f.run();
    run.overrides.mongodb_url =
        Some(mongodb_url_with(&user, "wrong-password", f.mongo.name()).into());
    let report = run.run().await;
    let error = report.error.as_ref().expect("the run fails");
    assert_eq!(error.class, FailureClass::Credentials, "{error}");
    assert!(report.changes().is_empty());
    let _ = f.mongo.run_command(doc! {"dropUser": &user}).await;

    // Nothing listens on a port just released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut run = f.run();
    run.overrides.mongodb_url =
        Some(format!("mongodb://127.0.0.1:{port}/?directConnection=true").into());
    let report = run.run().await;
    let error = report.error.as_ref().expect("the run fails");
    assert_eq!(error.class, FailureClass::Unreachable, "{error}");
    assert!(report.changes().is_empty());

    // The test PostgreSQL enforces passwords (scram-sha-256, scripts/deps/postgres.sh).
    let mut bad = url::Url::parse(&f.pg.url).unwrap();
    bad.set_password(Some("wrong-password")).unwrap();
    let mut run = f.run();
    run.overrides.postgres_url = Some(bad.to_string().into());
    let report = run.run().await;
    let error = report.error.as_ref().expect("the run fails");
    assert_eq!(error.class, FailureClass::Credentials, "{error}");
    assert!(report.changes().is_empty());

    // None of the three runs wrote anything.
    assert_eq!(f.collection_names().await, Vec::<String>::new());
    assert!(!f.pg.has_migrations_table().await);
    f.finish().await;
}
