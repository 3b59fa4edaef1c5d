//! The embedded default store: SQLite through `sqlx`, in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers queue in the application
//! instead of failing with `SQLITE_BUSY`, and read-check-write sequences (the mint limit, key
//! rotation) are serialised; reads use a separate read-only pool and never block on writes
//! (WAL). `synchronous` defaults to FULL: a commit is on disk before the call returns.
//! Instants are stored as canonical text (`Timestamp::to_canonical`), which sorts in time order.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mcpgw_core::time::Timestamp;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    AuditFilter, AuditRecord, AuthStore, LoginFailures, MintLimit, MintOutcome, Result,
    SessionRecord, SigningKeyRecord, StoreError, UserRecord, VendedToken, from_json, map_err,
    to_json,
};
use crate::config::{SqliteSync, StoreConfig};

pub struct SqliteStore {
    reads: SqlitePool,
    writes: SqlitePool,
}

fn ts(t: Timestamp) -> String {
    t.to_canonical()
}

fn get_opt_ts(row: &Row, column: &str) -> Result<Option<Timestamp>> {
    let text: Option<String> = row.try_get(column).map_err(map_err)?;
    text.map(|t| {
        Timestamp::parse(&t)
            .map_err(|e| StoreError::Internal(format!("{column} holds a bad timestamp: {e}")))
    })
    .transpose()
}

fn get_ts(row: &Row, column: &str) -> Result<Timestamp> {
    get_opt_ts(row, column)?
        .ok_or_else(|| StoreError::Internal(format!("{column} is unexpectedly NULL")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs migrations.
    pub async fn open(url: &str, settings: &StoreConfig) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("store.url is not a valid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match settings.sqlite_synchronous {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writes)
            .await
            .map_err(|e| StoreError::Internal(format!("migrating the SQLite schema: {e}")))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self { reads, writes })
    }

    async fn begin(&self) -> Result<Tx<'_>> {
        self.writes.begin().await.map_err(map_err)
    }

    fn reader(&self) -> &SqlitePool {
        &self.reads
    }

    /// Both pools answer: a stuck writer makes the store unready too.
    async fn ping_all(&self) -> Result<()> {
        for pool in [&self.reads, &self.writes] {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Nothing to do: the single writer connection already serialises transactions.
    async fn lock_subject(_tx: &mut Tx<'_>, _subject: &str) -> Result<()> {
        Ok(())
    }
}

impl_auth_store!(SqliteStore, sqlx::Sqlite, "sqlite");
