//! The `auth-server` binary: `--check-config`, the first start printing the bootstrap password
//! once, `reset-password`, and durability across `kill -9`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_server::config::AuthConfig;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Browser, TestDatabase};

fn command(dir: &std::path::Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MCPGW_AUTH_DATA_DIR", dir.display().to_string())
        .env("MCPGW_AUTH_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "MCPGW_AUTH_METRICS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("MCPGW_AUTH_SESSION__COOKIE_SECURE", "false")
        .env("MCPGW_AUTH_LOCAL__PASSWORD_HASH__MEMORY_KIB", "1024")
        .env("MCPGW_AUTH_LOG__FILTER", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn check_config_accepts_the_defaults_and_names_the_key_and_variable_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &[])
        .arg("--check-config")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "--check-config creates no files"
    );
    let out = command(dir.path(), &[("MCPGW_AUTH_TOKENS__MAX_TTL_SECONDS", "10")])
        .arg("--check-config")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tokens.max_ttl_seconds"), "{stderr}");
    assert!(
        stderr.contains("MCPGW_AUTH_TOKENS__MAX_TTL_SECONDS"),
        "{stderr}"
    );
    let out = command(
        dir.path(),
        &[("MCPGW_AUTH_PUBLIC_URL", "https://auth.example.com")],
    )
    .arg("--check-config")
    .output()
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "cookie_secure=false needs a loopback public_url"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MCPGW_AUTH_SESSION__COOKIE_SECURE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_config_refuses_an_old_sealing_key_name_naming_the_new_key_and_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let old = [("MCPGW_AUTH_SECRETS__ENCRYPTION_KEY_SECRET_ID", "mcpgw/auth")];
    let out = command(dir.path(), &old).arg("--check-config").output();
    let out = out.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2)
            && stderr.contains("was renamed: use `secrets.sealing_key.secret_id`")
            && stderr.contains("MCPGW_AUTH_SECRETS__SEALING_KEY__SECRET_ID"),
        "{stderr}"
    );
}

async fn wait_for_health(base: &str, child: &mut tokio::process::Child) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the auth-server exited with {status}");
        }
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the auth-server did not become ready in 30 s");
}

/// Reads the child's stderr until the "listening" line (printed after any bootstrap message)
/// and returns everything read so far.
async fn stderr_until_listening(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut seen = String::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listening on") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the auth-server announces that it listens");
    seen
}

#[tokio::test]
async fn the_first_start_prints_the_admin_password_once_and_it_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let env = [("MCPGW_AUTH_LISTEN", listen.as_str())];
    let mut first = command(dir.path(), &env).spawn().unwrap();
    let stderr = stderr_until_listening(&mut first).await;
    first.start_kill().unwrap();
    let _ = first.wait().await;
    let password = stderr
        .lines()
        .find_map(|l| l.split("password: ").nth(1))
        .unwrap_or_else(|| panic!("no password in {stderr}"))
        .trim()
        .to_owned();
    assert_eq!(password.len(), 24);
    assert!(stderr.contains("username: admin"), "{stderr}");

    let mut second = command(dir.path(), &env).spawn().unwrap();
    let stderr = stderr_until_listening(&mut second).await;
    wait_for_health(&base, &mut second).await;
    let b = Browser::new(&base);
    let r = b.login("admin", &password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    second.start_kill().unwrap();
    assert!(
        !stderr.contains("password:"),
        "printed only at the first start: {stderr}"
    );
    assert!(!stderr.contains(&password));
}

/// Environment for a binary on `backend` with its state in `dir` (a fresh database, owned by
/// the returned guard).
async fn backend_env(
    backend: Backend,
    dir: &std::path::Path,
) -> (Vec<(String, String)>, Option<TestDatabase>) {
    let mut env = vec![
        (
            "MCPGW_AUTH_LOCAL__BOOTSTRAP_PASSWORD_FILE".to_owned(),
            dir.join("admin.password").display().to_string(),
        ),
        (
            "MCPGW_AUTH_TOKENS__MINTS_PER_HOUR".to_owned(),
            "10000".to_owned(),
        ),
    ];
    let mut db = None;
    match backend {
        Backend::Sqlite => env.push((
            "MCPGW_AUTH_STORE__URL".to_owned(),
            format!("sqlite://{}/auth.db", dir.display()),
        )),
        Backend::Postgres => {
            let created = crate::helpers::test_database().await;
            env.push(("MCPGW_AUTH_STORE__URL".to_owned(), created.url.clone()));
            db = Some(created);
            env.push((
                "MCPGW_AUTH_SECRETS__SEALING_KEY__VALUE".to_owned(),
                mcpgw_core::secrets::Keyring::generate_base64()
                    .expose_secret()
                    .to_owned(),
            ));
        }
    }
    (env, db)
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

both_backends!(
    after_kill_9_every_acknowledged_mint_is_in_the_ledger,
    reset_password_replaces_a_lost_admin_password,
);

async fn after_kill_9_every_acknowledged_mint_is_in_the_ledger(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, _db) = backend_env(backend, dir.path()).await;
    let listen = format!("127.0.0.1:{}", free_port());
    env.push(("MCPGW_AUTH_LISTEN".to_owned(), listen.clone()));
    let base = format!("http://{listen}");
    let mut child = command(dir.path(), &refs(&env)).spawn().unwrap();
    wait_for_health(&base, &mut child).await;
    let password = std::fs::read_to_string(dir.path().join("admin.password")).unwrap();
    let b = Browser::new(&base);
    assert_eq!(
        b.login("admin", password.trim()).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = b.csrf().await;

    // Writers mint tokens, recording only what the auth-server acknowledged; the process is
    // killed while they are still writing.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (b, csrf, acked) = (b.clone(), csrf.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let req = b
                    .request(Method::POST, "/api/v1/tokens")
                    .header("x-csrf-token", &csrf)
                    .json(&json!({"scopes": ["mcp-registry-admin"], "ttl_seconds": 600}));
                let req = match b.cookies.lock().unwrap().iter().next() {
                    Some((k, v)) => req.header("cookie", format!("{k}={v}")),
                    None => req,
                };
                let Ok(r) = req.send().await else { break };
                if r.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(body) = r.json::<serde_json::Value>().await else {
                    break;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(body["jti"].as_str().unwrap().to_owned());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 5, "the writers got going: {}", acked.len());

    // Open the same store and look for every acknowledged mint.
    let toml = match backend {
        Backend::Sqlite => format!(
            "data_dir = \"{0}\"\n[store]\nurl = \"sqlite://{0}/auth.db\"\n",
            dir.path().display()
        ),
        Backend::Postgres => {
            let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
            format!(
                "[store]\nurl = \"{}\"\n[secrets.sealing_key]\nvalue = \"{}\"\n",
                get("MCPGW_AUTH_STORE__URL"),
                get("MCPGW_AUTH_SECRETS__SEALING_KEY__VALUE")
            )
        }
    };
    let config = AuthConfig::from_toml(&toml).unwrap();
    let store = auth_server::store::open(&config).await.unwrap();
    let mut missing = Vec::new();
    for jti in &acked {
        if store.get_vended_token(jti).await.unwrap().is_none() {
            missing.push(jti.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "lost {} of {} acknowledged mints",
        missing.len(),
        acked.len()
    );
    // Every recorded mint has its audit record (one transaction).
    let audits = store
        .list_audit(
            &auth_server::store::AuditFilter {
                action: Some("token.mint".into()),
                ..Default::default()
            },
            100_000,
        )
        .await
        .unwrap();
    let ledger = store
        .list_vended_tokens("local:admin", 100_000)
        .await
        .unwrap();
    assert_eq!(audits.len(), ledger.len());
}

async fn reset_password_replaces_a_lost_admin_password(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, _db) = backend_env(backend, dir.path()).await;
    let listen = format!("127.0.0.1:{}", free_port());
    env.push(("MCPGW_AUTH_LISTEN".to_owned(), listen.clone()));
    let base = format!("http://{listen}");
    let mut child = command(dir.path(), &refs(&env)).spawn().unwrap();
    wait_for_health(&base, &mut child).await;
    let old = std::fs::read_to_string(dir.path().join("admin.password")).unwrap();
    let out = command(dir.path(), &refs(&env))
        .args(["reset-password", "--username", "admin"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(new.len(), 24);
    let b = Browser::new(&base);
    assert_eq!(
        b.login("admin", old.trim()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b.login("admin", &new).await.status, StatusCode::SEE_OTHER);
    let out = command(dir.path(), &refs(&env))
        .args(["reset-password", "--username", "nobody"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no local user"));
    child.start_kill().unwrap();
}

fn moto_url() -> String {
    std::env::var("MCPGW_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "MCPGW_TEST_MOTO_URL is not set: run the suite with `make test`, or start the emulator with \
             `scripts/deps/moto.sh start` and export the URL it prints as MCPGW_TEST_MOTO_URL"
        )
    })
}

/// The environment that points the auth-server at the Secrets Manager emulator.
fn moto_env(endpoint: &str) -> [(&'static str, &str); 5] {
    [
        ("MCPGW_AUTH_SECRETS__AWS__ENDPOINT_URL", endpoint),
        ("MCPGW_AUTH_SECRETS__AWS__REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// The Secrets Manager emulator's settings and a client with its test credentials.
async fn moto() -> (
    mcpgw_core::secrets::SecretsManagerConfig,
    aws_sdk_secretsmanager::Client,
) {
    let aws = mcpgw_core::secrets::SecretsManagerConfig {
        region: "us-east-1".into(),
        endpoint_url: moto_url(),
    };
    let creds =
        aws_sdk_secretsmanager::config::Credentials::new("test", "test", None, None, "test");
    let client = mcpgw_core::secrets::secrets_manager_client(&aws, Some(creds)).await;
    (aws, client)
}

#[tokio::test]
async fn the_sealing_key_and_the_database_password_come_from_secrets_manager() {
    use mcpgw_core::secrets::Keyring;
    let (aws, client) = moto().await;
    let test_db = crate::helpers::test_database().await;
    let mut db = url::Url::parse(&test_db.url).unwrap();
    let password = db.password().unwrap().to_owned();
    db.set_password(None).unwrap();
    let key = Keyring::generate_base64();
    let key_id = crate::helpers::unique_name("mcpgw/auth/key");
    let pw_id = crate::helpers::unique_name("mcpgw/auth/db");
    for (id, value) in [(&key_id, key.expose_secret()), (&pw_id, password.as_str())] {
        client
            .create_secret()
            .name(id)
            .secret_string(value)
            .send()
            .await
            .expect("the emulator answers");
    }
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("MCPGW_AUTH_LISTEN", listen.as_str()),
        ("MCPGW_AUTH_STORE__URL", db.as_str()),
        ("MCPGW_AUTH_STORE__PASSWORD__SECRET_ID", pw_id.as_str()),
        (
            "MCPGW_AUTH_SECRETS__SEALING_KEY__SECRET_ID",
            key_id.as_str(),
        ),
    ]
    .into_iter()
    .chain(moto_env(&aws.endpoint_url))
    .collect::<Vec<_>>();
    let check = command(dir.path(), &env)
        .arg("--check-config")
        .output()
        .await
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let file = dir.path().join("admin.password").display().to_string();
    let mut env = env.to_vec();
    env.push(("MCPGW_AUTH_LOCAL__BOOTSTRAP_PASSWORD_FILE", file.as_str()));
    let base = format!("http://{listen}");
    let mut child = command(dir.path(), &env).spawn().unwrap();
    wait_for_health(&base, &mut child).await;
    let b = Browser::new(&base);
    assert_eq!(b.get("/ready").await.status, StatusCode::OK);
    let admin = std::fs::read_to_string(dir.path().join("admin.password")).unwrap();
    assert_eq!(
        b.login("admin", admin.trim()).await.status,
        StatusCode::SEE_OTHER
    );
    let r = b
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"scopes": ["mcp-registry-admin"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        !dir.path().join("auth-server.key").exists(),
        "no local key when Secrets Manager provides one"
    );
    child.start_kill().unwrap();
    // The signing key is sealed with the key from Secrets Manager.
    let config = AuthConfig::from_toml(&format!(
        "[store]\nurl = \"{}\"\n[store.password]\nvalue = \"{password}\"\n[secrets.sealing_key]\nvalue = \"{}\"\n",
        db.as_str(),
        key.expose_secret()
    ))
    .unwrap();
    let store = auth_server::store::open(&config).await.unwrap();
    let current = store.current_signing_key().await.unwrap().unwrap();
    let ring = Keyring::from_base64(&key, &[]).unwrap();
    assert_eq!(current.sealed_key.kid, ring.primary_kid());
}

/// RDS rotates its managed master password (every 7 days by default) and PostgreSQL checks a
/// password only when a connection is made: an auth-server that read the password once would
/// fail on its next new connection. With `store.password.secret_id` + `json_key` it reads the
/// secret again every `password_refresh_seconds`.
#[tokio::test]
async fn a_rotated_database_password_is_used_for_new_connections_without_a_restart() {
    use sqlx::Connection;
    let (aws, client) = moto().await;
    let test_db = crate::helpers::test_database().await;
    let mut admin = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    // A login role of its own, whose password the test rotates.
    let role = format!("rot_{}", uuid::Uuid::new_v4().simple());
    let db_name = url::Url::parse(&test_db.url).unwrap().path()[1..].to_owned();
    execute_all(
        &mut admin,
        [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'first-password-1'"),
            format!("GRANT ALL ON DATABASE \"{db_name}\" TO {role}"),
            format!("ALTER DATABASE \"{db_name}\" OWNER TO {role}"),
        ],
    )
    .await;
    let mut url = url::Url::parse(&test_db.url).unwrap();
    url.set_password(None).unwrap();
    url.set_username(&role).unwrap();
    let secret_id = crate::helpers::unique_name("mcpgw/aurora/master");
    let secret = |password: &str| json!({"username": role, "password": password}).to_string();
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(secret("first-password-1"))
        .send()
        .await
        .expect("the emulator answers");

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let key = mcpgw_core::secrets::Keyring::generate_base64();
    let env = [
        ("MCPGW_AUTH_LISTEN", listen.as_str()),
        ("MCPGW_AUTH_STORE__URL", url.as_str()),
        ("MCPGW_AUTH_STORE__PASSWORD__SECRET_ID", secret_id.as_str()),
        ("MCPGW_AUTH_STORE__PASSWORD__JSON_KEY", "password"),
        ("MCPGW_AUTH_STORE__PASSWORD_REFRESH_SECONDS", "1"),
        (
            "MCPGW_AUTH_SECRETS__SEALING_KEY__VALUE",
            key.expose_secret(),
        ),
    ]
    .into_iter()
    .chain(moto_env(&aws.endpoint_url))
    .collect::<Vec<_>>();
    let base = format!("http://{listen}");
    let mut child = command(dir.path(), &env).spawn().unwrap();
    wait_for_health(&base, &mut child).await;
    let b = Browser::new(&base);
    assert_eq!(b.get("/ready").await.status, StatusCode::OK);

    // Rotate: the database first, then the secret (as RDS does), and wait for a re-read.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {role} PASSWORD 'second-password-2'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    client
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(secret("second-password-2"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Close the auth-server's open connections: the next request needs a new one.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(&role)
        .execute(&mut admin)
        .await
        .unwrap();
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..20 {
        ready = b.get("/ready").await.status;
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        ready,
        StatusCode::OK,
        "new connections use the rotated password"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
    // Roles outlive databases: hand its objects back and drop it.
    execute_all(
        &mut admin,
        [
            format!("ALTER DATABASE \"{db_name}\" OWNER TO CURRENT_USER"),
            format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
            format!("DROP OWNED BY {role}"),
            format!("DROP ROLE {role}"),
        ],
    )
    .await;
}

/// Runs each statement, in order, as the test server's administrator.
async fn execute_all<const N: usize>(admin: &mut sqlx::PgConnection, statements: [String; N]) {
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}
