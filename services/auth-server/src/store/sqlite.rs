//! The embedded default store: SQLite through `sqlx`, in WAL mode, its pools opened by
//! `mcpgw_core::sqlite::open_pools` (shared with the other service with an embedded store).
//!
//! Writes go through a pool of exactly one connection, so writers queue in the application
//! instead of failing with `SQLITE_BUSY`, and read-check-write sequences (the mint limit, key
//! rotation) are serialised; reads use a separate read-only pool and never block on writes
//! (WAL). `synchronous` defaults to FULL: a commit is on disk before the call returns.
//! Instants are stored as canonical text (`Timestamp::to_canonical`), which sorts in time order.

use async_trait::async_trait;
use mcpgw_core::sqlite::{self, Pools};
use mcpgw_core::time::Timestamp;
use sqlx::Row as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;

use super::{
    AuditFilter, AuditRecord, AuthStore, Consent, Families, LoginFailures, MintLimit, MintOutcome,
    RefreshFamily, RefreshTokenRecord, RegisteredClient, RegistrationLimits, RegistrationOutcome,
    Result, SessionRecord, SigningKeyRecord, StoreError, UserRecord, VendedToken, from_json,
    map_err, to_json,
};
use crate::config::StoreConfig;

/// The reader and writer pools (`mcpgw_core::sqlite`).
pub struct SqliteStore(Pools);

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
    /// Opens (creating if needed) the database and runs the migrations in `migrations/sqlite`.
    pub async fn open(url: &str, settings: &StoreConfig) -> Result<Self> {
        static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
        Ok(Self(sqlite::open_pools(url, settings, &MIGRATIONS).await?))
    }

    async fn begin(&self) -> Result<Tx<'_>> {
        self.0.writes.begin().await.map_err(map_err)
    }

    fn reader(&self) -> &SqlitePool {
        &self.0.reads
    }

    /// Both pools answer: a stuck writer makes the store unready too.
    async fn ping_all(&self) -> Result<()> {
        self.0.ping().await.map_err(map_err)
    }

    /// Nothing to do: the single writer connection already serialises transactions.
    async fn lock_subject(_tx: &mut Tx<'_>, _subject: &str) -> Result<()> {
        Ok(())
    }
}

impl_auth_store!(SqliteStore, sqlx::Sqlite, "sqlite");
