//! Step 8: the auth-server's PostgreSQL migrations, the ones compiled into the auth-server this
//! binary ships with. Applied migrations are checked against this binary's before anything runs:
//! one changed since it was applied, or one this binary does not know, stops the run.

use std::collections::BTreeMap;

use auth_server::store::postgres::POSTGRES_MIGRATOR;
use mcpgw_core::plan::Change;
use sqlx::migrate::MigrateError;

use crate::error::{Result, SetupError};
use crate::steps::connect::classify_postgres;
use crate::{Context, Databases, Outcome};

/// A row of `_sqlx_migrations`.
struct Applied {
    checksum: Vec<u8>,
    success: bool,
}

pub async fn run(ctx: &Context, dbs: &mut Databases) -> Result<Outcome> {
    let pool = dbs
        .postgres
        .as_ref()
        .ok_or_else(|| SetupError::internal("the databases step connects Aurora first"))?;
    let applied = applied(pool).await?;
    let known: Vec<_> = POSTGRES_MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();

    for (version, row) in &applied {
        let Some(m) = known.iter().find(|m| m.version == *version) else {
            return Err(SetupError::apply(format!(
                "the auth database has migration {version} applied, which this mcpgw-setup does not know"
            ))
            .with_hint(
                "the database was migrated by a newer auth-server; run the mcpgw-setup of that release",
            ));
        };
        if !row.success {
            return Err(SetupError::apply(format!(
                "migration {version} ({}) failed part-way when it was last run and is marked unfinished in _sqlx_migrations",
                m.description
            ))
            .with_hint(
                "repair the schema by hand, then delete that row from _sqlx_migrations and run again",
            ));
        }
        if row.checksum != *m.checksum {
            return Err(SetupError::apply(format!(
                "migration {version} ({}) was applied with a different checksum than this binary's: its SQL changed after it ran",
                m.description
            ))
            .with_hint(
                "use the mcpgw-setup of the release that applied it (a newer binary may be needed); never edit an applied migration",
            ));
        }
    }

    let changes: Vec<Change> = known
        .iter()
        .map(|m| {
            let object = format!("migration {:04} {}", m.version, m.description);
            if applied.contains_key(&m.version) {
                Change::unchanged(object)
            } else {
                Change::create(object)
            }
        })
        .collect();
    let pending = changes.iter().filter(|c| c.is_change()).count();
    if pending > 0 && !ctx.dry_run {
        // The migrator takes an advisory lock, so registries or auth-servers starting at the
        // same time do not run the same migration twice.
        let what = "running the auth database migrations";
        POSTGRES_MIGRATOR.run(pool).await.map_err(|e| match e {
            MigrateError::Execute(e) => classify_postgres(what, &e),
            MigrateError::ExecuteMigration(e, version) => {
                classify_postgres(&format!("{what}: migration {version}"), &e)
            }
            other => SetupError::apply(format!("{what}: {other}"))
                .with_hint("fix the cause, then run again: applied migrations are kept"),
        })?;
    }
    Ok(Outcome::changes(
        changes,
        format!("{} known, {pending} pending", known.len()),
    ))
}

/// The migrations recorded in `_sqlx_migrations`; none when the table does not exist yet.
async fn applied(pool: &sqlx::PgPool) -> Result<BTreeMap<i64, Applied>> {
    let what = "reading _sqlx_migrations";
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| classify_postgres(what, &e))?;
    if !exists {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|e| classify_postgres(what, &e))?;
    Ok(rows
        .into_iter()
        .map(|(version, checksum, success)| (version, Applied { checksum, success }))
        .collect())
}
