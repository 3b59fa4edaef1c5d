//! Test support (feature `test-support`): a token issuer on loopback that serves an OpenID
//! discovery document and a JWKS, and signs tokens with keys the test controls.
//!
//! It is a stand-in for an IdP in tests of token handling (expired, tampered, rotated keys, an
//! IdP that goes down). Tests of the real login and token flows use Keycloak and a second OIDC
//! provider (`scripts/deps/keycloak.sh`, `scripts/deps/oidc.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::{Value, json};

use crate::signing::SigningKey;

/// A loopback token issuer.
pub struct TestIssuer {
    pub issuer: String,
    keys: Mutex<Vec<Jwk>>,
    signing: Mutex<Arc<SigningKey>>,
    up: AtomicBool,
}

impl TestIssuer {
    /// Starts serving at `http://127.0.0.1:<port>/realms/test` with one published key.
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let key = Arc::new(SigningKey::generate());
        let issuer = Arc::new(Self {
            issuer: format!("http://{addr}/realms/test"),
            keys: Mutex::new(vec![key.public_jwk().clone()]),
            signing: Mutex::new(key),
            up: AtomicBool::new(true),
        });
        let discovery = issuer.clone();
        let certs = issuer.clone();
        let app = axum::Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let i = discovery.clone();
                    async move {
                        axum::Json(
                            json!({"issuer": i.issuer, "jwks_uri": format!("{}/certs", i.issuer)}),
                        )
                    }
                }),
            )
            .route(
                "/realms/test/certs",
                axum::routing::get(move || {
                    let i = certs.clone();
                    async move {
                        if !i.up.load(Ordering::SeqCst) {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        let keys = i.keys.lock().expect("lock").clone();
                        Ok(axum::Json(JwkSet { keys }))
                    }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        issuer
    }

    /// Publishes a new key and signs with it from now on (the old key stays published).
    pub fn rotate(&self) -> Arc<SigningKey> {
        let key = Arc::new(SigningKey::generate());
        self.keys
            .lock()
            .expect("lock")
            .push(key.public_jwk().clone());
        *self.signing.lock().expect("lock") = key.clone();
        key
    }

    /// Takes the JWKS endpoint down (503) or back up.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// Access-token claims for `sub` with `groups`, valid for 5 minutes, for `audience`.
    pub fn claims(&self, sub: &str, groups: &[&str], audience: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "sub": sub, "aud": audience, "exp": now + 300, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "groups": groups,
            "preferred_username": sub, "typ": "Bearer"
        })
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        let key = self.signing.lock().expect("lock").clone();
        key.sign(claims, "JWT").expect("signing works")
    }
}

/// An environment variable the MCP peers setup exports; panics with what to run when missing.
pub fn peer_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `make test`, or `eval \"$(scripts/deps/mcp-peers.sh env)\"` after `scripts/deps/mcp-peers.sh install`"
        )
    })
}

/// The reference MCP server-everything (from `scripts/deps/mcp-peers.sh`) in `mode`
/// (`streamableHttp` or `sse`) on a free loopback port, once it listens. Returns the process
/// (killed when dropped) and its MCP URL (`/mcp`, or `/sse` for the legacy transport).
pub async fn server_everything(mode: &str) -> (tokio::process::Child, String) {
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = tokio::process::Command::new(peer_env("MCPGW_TEST_NODE"))
        .args([
            "--require",
            &peer_env("MCPGW_TEST_NODE_LOOPBACK"),
            &peer_env("MCPGW_TEST_SERVER_EVERYTHING"),
            mode,
        ])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server-everything starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "server-everything did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = if mode == "sse" { "sse" } else { "mcp" };
    (child, format!("http://127.0.0.1:{port}/{path}"))
}

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
