//! Opening an embedded SQLite store (feature `sqlite`): the one pool setup the registry and
//! the auth-server share.
//!
//! The rules, the same for every service:
//! - WAL mode, foreign keys on, a 10 s busy timeout; `synchronous` FULL by default, so a commit
//!   is on disk before the call returns (`store.sqlite_synchronous = "normal"` trades that for
//!   speed);
//! - writes go through a pool of exactly one connection (30 s acquire timeout), so writers
//!   queue in the application instead of failing with `SQLITE_BUSY` and read-check-write
//!   sequences are serialised; reads use a separate read-only pool of `store.pool_size`
//!   connections (10 s acquire timeout) and never block on writes;
//! - the database file and its directory are created when missing; the service's migrations
//!   run on the writer before the reader pool opens.
//!
//! The migrations stay in each service (`sqlx::migrate!` reads them at compile time, relative
//! to the crate); the caller passes them in. Errors come back as [`OpenError`], which a store
//! maps onto its own error enum. The `[store]` keys every such service has are [`StoreConfig`],
//! with the keys of its server backend beside them.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// `store.sqlite_synchronous`: when a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSync {
    /// Before the commit returns: an acknowledged write survives a power loss.
    Full,
    /// At WAL checkpoints: a power loss may lose the last commits, a crash does not.
    Normal,
}

/// `[store]`: where a service keeps its data (SQLite, or its server database) and its pools,
/// with `B`, the keys only its server backend has, flattened beside them (the same table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig<B> {
    /// `sqlite://PATH` (empty = a file in the service's `data_dir`) or the server backend's URL.
    pub url: String,
    /// Read connections (SQLite) / the server backend's pool; default 8.
    pub pool_size: u32,
    /// SQLite durability; default `full`.
    pub sqlite_synchronous: SqliteSync,
    #[serde(flatten)]
    pub backend: B,
}

/// The two pools of an open store.
pub struct Pools {
    /// Read-only, `pool_size` connections.
    pub reads: SqlitePool,
    /// Exactly one connection: every write and transaction.
    pub writes: SqlitePool,
}

impl Pools {
    /// Both pools answer `SELECT 1`: a stuck writer makes the store unready too.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        for pool in [&self.reads, &self.writes] {
            sqlx::query("SELECT 1").execute(pool).await?;
        }
        Ok(())
    }
}

/// Why a store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database could not be reached: its directory cannot be created, the pool timed out
    /// or the file cannot be read.
    #[error("{0}")]
    Unavailable(String),
    /// `store.url` does not parse, a migration failed, or SQLite refused otherwise.
    #[error("{0}")]
    Internal(String),
}

impl OpenError {
    /// This error as a store's own: `unavailable(message)` or `internal(message)` (what a
    /// store's `From<OpenError>` says).
    pub fn into_store<E>(self, unavailable: fn(String) -> E, internal: fn(String) -> E) -> E {
        match self {
            OpenError::Unavailable(m) => unavailable(m),
            OpenError::Internal(m) => internal(m),
        }
    }
}

fn connect_error(e: sqlx::Error) -> OpenError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            OpenError::Unavailable(e.to_string())
        }
        _ => OpenError::Internal(e.to_string()),
    }
}

/// Opens (creating if needed) the database at `url` (the effective `settings.url`), runs
/// `migrations` and returns its pools.
pub async fn open_pools<B>(
    url: &str,
    settings: &StoreConfig<B>,
    migrations: &Migrator,
) -> Result<Pools, OpenError> {
    let (synchronous, pool_size) = (settings.sqlite_synchronous, settings.pool_size);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| OpenError::Internal(format!("store.url is not a valid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match synchronous {
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
            .map_err(|e| OpenError::Unavailable(format!("creating {}: {e}", dir.display())))?;
    }
    let writes = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    migrations
        .run(&writes)
        .await
        .map_err(|e| OpenError::Internal(format!("migrating the SQLite schema: {e}")))?;
    let reads = SqlitePoolOptions::new()
        .max_connections(pool_size.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.read_only(true))
        .await
        .map_err(connect_error)?;
    Ok(Pools { reads, writes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_from_str;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Service {
        store: StoreConfig<Backend>,
    }

    #[derive(Debug, Deserialize)]
    struct Backend {
        database: String,
    }

    const DEFAULTS: &str =
        "[store]\nurl = \"\"\npool_size = 8\nsqlite_synchronous = \"full\"\ndatabase = \"d\"\n";

    #[test]
    fn the_shared_keys_and_the_backends_are_one_table() {
        let layer = "[store]\npool_size = 3\ndatabase = \"other\"\n";
        let s: Service = load_from_str(DEFAULTS, &[layer], "MCPGW_T_").unwrap();
        assert_eq!(s.store.pool_size, 3);
        assert_eq!(s.store.sqlite_synchronous, SqliteSync::Full);
        assert_eq!(s.store.backend.database, "other");
    }

    #[test]
    fn a_key_neither_has_is_refused() {
        let err = load_from_str::<Service>(DEFAULTS, &["[store]\npool_sise = 3\n"], "MCPGW_T_")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool_sise"), "{err}");
    }
}
