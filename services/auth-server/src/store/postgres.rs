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
    AuditFilter, AuditRecord, AuthStore, MintLimit, MintOutcome, Result, SessionRecord,
    SigningKeyRecord, StoreError, UserRecord, VendedToken, from_json, map_err, to_json,
};
use crate::config::StoreConfig;

/// The PostgreSQL schema's migrations, compiled in. `open` runs them; `mcpgw-setup` compares
/// them with `_sqlx_migrations` to report what is pending, then runs them the same way.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
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
            .connect_with(options)
            .await
            .map_err(map_err)?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migrating the PostgreSQL schema: {e}")))?;
        Ok(Self { pool })
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
