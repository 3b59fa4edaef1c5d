//! The production store: PostgreSQL (Aurora PostgreSQL) through `sqlx`.
//!
//! One pool serves reads and writes. Transactions run at PostgreSQL's default READ COMMITTED;
//! the two read-check-write sequences are made safe without a stricter level:
//! - the mint limit takes a transaction-scoped advisory lock on the user's subject first, so
//!   mints of one user on any replica run one at a time (other users are not blocked);
//! - a key rotation updates the current key only while it is still unretired and inserts the
//!   next generation under a unique constraint, so of two concurrent rotations one fails.
//!
//! Instants are `TIMESTAMPTZ` (microseconds, like `Timestamp`). The password comes from
//! `store.password` (Secrets Manager, a file or the config), never from the URL in logs.
//! Migrations run at start; sqlx holds an advisory lock meanwhile, so replicas starting together
//! migrate once.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcpgw_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    AuditFilter, AuditRecord, AuthStore, Consent, Families, LoginFailures, MintLimit, MintOutcome,
    RefreshFamily, RefreshTokenRecord, RegisteredClient, RegistrationLimits, RegistrationOutcome,
    Result, SessionRecord, SigningKeyRecord, StoreError, UserRecord, VendedToken, from_json,
    map_err, to_json,
};
use crate::config::StoreConfig;

/// The PostgreSQL schema's migrations, compiled in. `open` runs them; `mcpgw-setup` compares
/// them with `_sqlx_migrations` to report what is pending, then runs them the same way.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    /// What new connections are made with (the password changes with a rotation).
    options: PgConnectOptions,
    /// The task reading a rotated password again; stopped with the store.
    refresher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(task) = self
            .refresher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

fn ts(t: Timestamp) -> DateTime<Utc> {
    t.as_datetime()
}

fn get_opt_ts(row: &Row, column: &str) -> Result<Option<Timestamp>> {
    let at: Option<DateTime<Utc>> = row.try_get(column).map_err(map_err)?;
    Ok(at.map(Timestamp::from_datetime))
}

fn get_ts(row: &Row, column: &str) -> Result<Timestamp> {
    get_opt_ts(row, column)?
        .ok_or_else(|| StoreError::Internal(format!("{column} is unexpectedly NULL")))
}

impl PostgresStore {
    /// Connects and runs migrations. `password` overrides any password in the URL.
    pub async fn open(
        url: &str,
        settings: &StoreConfig,
        password: Option<SecretString>,
    ) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Internal(format!("store.url is not a valid PostgreSQL URL: {e}"))
        })?;
        if let Some(password) = password {
            options = options.password(password.expose_secret());
        }
        options = options.application_name("mcpgw-auth-server");
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migrating the PostgreSQL schema: {e}")))?;
        Ok(Self {
            pool,
            options,
            refresher: std::sync::Mutex::new(None),
        })
    }

    /// Reads the password from `source` every `every` and, when it changed, makes new
    /// connections with it. Open connections keep working (PostgreSQL checks a password only
    /// when connecting), so a rotation costs nothing but this read.
    pub fn refresh_password(
        &self,
        source: mcpgw_core::secrets::SecretSource,
        aws: mcpgw_core::secrets::SecretsManagerConfig,
        every: Duration,
    ) {
        let pool = self.pool.clone();
        let options = self.options.clone();
        let task = tokio::spawn(async move {
            let mut current: Option<String> = None;
            loop {
                tokio::time::sleep(every).await;
                match source.resolve(&aws).await {
                    Ok(Some(password)) => {
                        let password = password.expose_secret();
                        if current.as_deref() == Some(password) {
                            continue;
                        }
                        // The first read only learns the value the pool already uses.
                        if current.is_some() {
                            tracing::info!(
                                "store.password changed: new connections use the new one"
                            );
                        }
                        pool.set_connect_options(options.clone().password(password));
                        current = Some(password.to_owned());
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        "store.password could not be read again; new connections keep the last one"
                    ),
                }
            }
        });
        *self.refresher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    async fn begin(&self) -> Result<Tx<'_>> {
        self.pool.begin().await.map_err(map_err)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn ping_all(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Serialises mints of one subject across replicas until the transaction ends.
    async fn lock_subject(tx: &mut Tx<'_>, subject: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(format!("mcpgw-auth:mint:{subject}"))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

impl_auth_store!(PostgresStore, sqlx::Postgres, "postgres");
