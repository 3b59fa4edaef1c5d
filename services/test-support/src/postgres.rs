//! A PostgreSQL database per test, on the server that `scripts/test.sh` starts.

use std::sync::Mutex;

/// A PostgreSQL database of one test, on the server of `MCPGW_TEST_POSTGRES_URL` (started by
/// `scripts/test.sh`), made with `CREATE DATABASE` and dropped `WITH (FORCE)` when the test
/// ends. Names are `<prefix><unix time>_<uuid>`, so the databases of a run that crashed before
/// dropping them are swept (after an hour) by the next run with the same prefix.
pub struct PgTestDatabase {
    pub url: String,
    name: String,
}

async fn pg_admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    let url = peer_env_or_panic("MCPGW_TEST_POSTGRES_URL", "postgres.sh start");
    sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to MCPGW_TEST_POSTGRES_URL: {e}"))
}

fn peer_env_or_panic(name: &str, start: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test`, or start it with `scripts/deps/{start}` and export its URL")
    })
}

async fn pg_drop(conn: &mut sqlx::PgConnection, name: &str) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(conn)
    .await;
}

/// Drops `prefix` databases older than an hour, once per process and prefix.
async fn pg_sweep(conn: &mut sqlx::PgConnection, prefix: &str) {
    static SWEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if swept.iter().any(|p| p == prefix) {
            return;
        }
        swept.push(prefix.to_owned());
    }
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        if created < cutoff {
            pg_drop(conn, &name).await;
        }
    }
}

impl PgTestDatabase {
    /// A fresh, empty database whose name starts with `prefix` (letters, digits and `_`).
    pub async fn create(prefix: &str) -> Self {
        use sqlx::Connection;
        let name = format!(
            "{prefix}{}_{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = pg_admin().await;
        pg_sweep(&mut conn, prefix).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&peer_env_or_panic(
            "MCPGW_TEST_POSTGRES_URL",
            "postgres.sh start",
        ))
        .expect("MCPGW_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread with its
        // own small runtime does the work.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let mut conn = pg_admin().await;
                pg_drop(&mut conn, &name).await;
                let _ = conn.close().await;
            });
        })
        .join();
    }
}
