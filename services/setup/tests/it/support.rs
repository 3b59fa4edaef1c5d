//! What the setup tests share: the real components' addresses, options for a run, a
//! captured output, and a spec with a realm of its own per test.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection as _;

use mcpgw_setup::inputs::{Overrides, RawInputs, output};
use mcpgw_setup::output::{Captured, Output};
use mcpgw_setup::spec::DEFAULT_SPEC;
use mcpgw_setup::{Options, Report, Step};
use secrecy::SecretString;

pub fn env(name: &str, start: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test`, or start it with `scripts/deps/{start}` and export its URL")
    })
}

pub fn keycloak_url() -> String {
    env("MCPGW_TEST_KEYCLOAK_URL", "keycloak.sh start")
}

pub fn keycloak_admin_password() -> String {
    env(
        "MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD",
        "keycloak.sh admin-password",
    )
}

pub fn mongodb_url() -> String {
    env("MCPGW_TEST_MONGODB_URL", "mongodb.sh start")
}

pub fn postgres_url() -> String {
    env("MCPGW_TEST_POSTGRES_URL", "postgres.sh start")
}

pub fn moto_url() -> String {
    env("MCPGW_TEST_MOTO_URL", "moto.sh start")
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The built-in spec with its realm renamed (each test owns a realm).
pub fn spec_for_realm(realm: &str) -> String {
    DEFAULT_SPEC.replacen("name = \"mcpgw\"", &format!("name = \"{realm}\""), 1)
}

/// A run's settings; tests adjust the fields, then [`Run::run`].
pub struct Run {
    pub values: Vec<(&'static str, String)>,
    pub overrides: Overrides,
    pub spec: Option<String>,
    pub secrets_dir: Option<std::path::PathBuf>,
    pub aws_endpoint_url: Option<String>,
    pub dry_run: bool,
    pub only: Vec<Step>,
    pub skip: Vec<Step>,
    pub captured: Captured,
}

impl Run {
    /// Keycloak (admin password given), `realm`'s spec, dev environment, secrets in `secrets`.
    pub fn keycloak(realm: &str, secrets: &Path) -> Self {
        Self {
            values: vec![
                (output::KEYCLOAK_URL, keycloak_url()),
                (output::ENVIRONMENT, "dev".to_owned()),
                (
                    output::AUTH_SERVER_URL,
                    "https://auth.example.test".to_owned(),
                ),
            ],
            overrides: Overrides {
                keycloak_admin_password: Some(SecretString::from(keycloak_admin_password())),
                wait_endpoints: Some(Duration::from_secs(10)),
                wait_keycloak: Some(Duration::from_secs(10)),
                ..Overrides::default()
            },
            spec: Some(spec_for_realm(realm)),
            secrets_dir: Some(secrets.to_owned()),
            aws_endpoint_url: None,
            dry_run: false,
            only: vec![],
            skip: vec![],
            captured: Captured::default(),
        }
    }

    /// The database steps only (documentdb, migrations, scopes): DocumentDB database `database`
    /// at `mongodb_url`, PostgreSQL at `postgres_url`, the built-in spec, secrets in `secrets`.
    pub fn databases(
        mongodb_url: &str,
        database: &str,
        postgres_url: &str,
        secrets: &Path,
    ) -> Self {
        Self {
            values: vec![(output::DOCUMENTDB_DATABASE, database.to_owned())],
            overrides: Overrides {
                mongodb_url: Some(SecretString::from(mongodb_url.to_owned())),
                postgres_url: Some(SecretString::from(postgres_url.to_owned())),
                ..Overrides::default()
            },
            spec: None,
            secrets_dir: Some(secrets.to_owned()),
            aws_endpoint_url: None,
            dry_run: false,
            only: vec![Step::Documentdb, Step::Migrations, Step::Scopes],
            skip: vec![],
            captured: Captured::default(),
        }
    }

    pub fn set(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.values.retain(|(n, _)| *n != name);
        self.values.push((name, value.to_owned()));
        self
    }

    pub async fn run(&self) -> Report {
        let mut raw = RawInputs::default();
        for (n, v) in &self.values {
            raw.set(n, Some(v.clone()));
        }
        let options = Options {
            raw,
            overrides: self.overrides.clone(),
            spec: self.spec.clone().map(|s| (s, "test spec".to_owned())),
            secrets_dir: self.secrets_dir.clone(),
            aws_endpoint_url: self.aws_endpoint_url.clone(),
            dry_run: self.dry_run,
            only: self.only.clone(),
            skip: self.skip.clone(),
            out: Output::to_writer(Box::new(self.captured.clone()), true),
        };
        mcpgw_setup::run(options).await
    }
}

/// Panics with the run's output unless it succeeded.
pub fn assert_ok(report: &Report, run: &Run) {
    assert!(
        report.error.is_none(),
        "the run failed: {:?}\n{}",
        report.error,
        run.captured.text()
    );
}

/// A PostgreSQL database of one test (`setup_it_…`), dropped when the test ends.
pub struct PgDatabase(mcpgw_test_support::PgTestDatabase);

impl std::ops::Deref for PgDatabase {
    type Target = mcpgw_test_support::PgTestDatabase;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl PgDatabase {
    pub async fn create() -> Self {
        Self(mcpgw_test_support::PgTestDatabase::create("setup_it_").await)
    }

    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }

    /// Whether sqlx's bookkeeping table exists (i.e. anything was migrated).
    pub async fn has_migrations_table(&self) -> bool {
        let mut conn = self.connect().await;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        exists
    }
}

/// The registry, in-process on real sockets, on MongoDB database `database` (as ECS runs it
/// before setup); without tool discovery or self-registration, which these tests do not use.
pub async fn start_registry(database: &str) -> (registry::app::Running, tempfile::TempDir) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [store]\nurl = \"{}\"\nmongo_database = \"{database}\"\n[egress]\nallow_loopback = true\n\
         [secrets.sealing_key]\nvalue = \"{}\"\n[health]\ndiscover_tools = false\n[mcp]\nregister = false\n",
        dir.path().display(),
        mongodb_url(),
        secrecy::ExposeSecret::expose_secret(&mcpgw_core::secrets::Keyring::generate_base64()),
    );
    let config = registry::config::RegistryConfig::from_toml_layers(&[&config])
        .expect("the registry's test config is valid");
    let running = registry::app::start(config)
        .await
        .expect("the registry starts");
    (running, dir)
}
