//! The credential-sealing key from AWS Secrets Manager (the emulator started by
//! `scripts/test.sh`), end to end through the real binary.

use mcpgw_core::domain::{ServerPath, UpstreamAuth};
use mcpgw_core::secrets::{Keyring, SecretsManagerConfig, secrets_manager_client};
use registry::config::StoreConfig;
use registry::store::RegistryStore;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{Backend, Process, server_body, unique_name};

fn moto_url() -> String {
    std::env::var("MCPGW_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("MCPGW_TEST_MOTO_URL is not set: run the suite with `make test`, or start the emulator with `scripts/deps/moto.sh start`")
    })
}

fn aws_env(secret_id: &str) -> Vec<(String, String)> {
    vec![
        (
            "MCPGW_REGISTRY_SECRETS__SEALING_KEY__SECRET_ID".into(),
            secret_id.into(),
        ),
        (
            "MCPGW_REGISTRY_SECRETS__AWS__ENDPOINT_URL".into(),
            moto_url(),
        ),
        (
            "MCPGW_REGISTRY_SECRETS__AWS__REGION".into(),
            "us-east-1".into(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

#[tokio::test]
async fn credentials_are_sealed_with_the_key_from_secrets_manager() {
    let config = SecretsManagerConfig {
        region: "us-east-1".into(),
        endpoint_url: moto_url(),
    };
    let creds =
        aws_sdk_secretsmanager::config::Credentials::new("test", "test", None, None, "test");
    let client = secrets_manager_client(&config, Some(creds)).await;
    let secret_id = unique_name("mcpgw/registry/key");
    let key = Keyring::generate_base64();
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(key.expose_secret())
        .send()
        .await
        .expect("emulator answers");

    let dir = tempfile::tempdir().unwrap();
    let mut env = Process::env_for(Backend::Sqlite, dir.path());
    env.extend(aws_env(&secret_id));
    let mut process = Process::start(env, dir.path());
    process.wait_ready().await;
    assert!(
        !dir.path().join("registry.key").exists(),
        "no local key when Secrets Manager provides one"
    );
    let admin = std::fs::read_to_string(dir.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let mut body = server_body("weather");
    body["upstream_auth"] = json!({"type": "bearer", "token": "tok-from-test"});
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/servers", process.base))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    process.kill9().await;

    // Read the stored record directly: it opens with the Secrets Manager key and no other.
    let settings = StoreConfig {
        url: String::new(),
        pool_size: 1,
        sqlite_synchronous: registry::config::SqliteSync::Full,
        backend: registry::config::RegistryStoreConfig {
            mongo_database: "unused".into(),
            mongo_server_selection_timeout_ms: 1000,
            catalog_cache_ms: 0,
        },
    };
    let store = registry::store::sqlite::SqliteStore::open(
        &format!("sqlite://{}/registry.db", dir.path().display()),
        &settings,
    )
    .await
    .unwrap();
    let record = store
        .get_server(&ServerPath::parse("weather").unwrap())
        .await
        .unwrap()
        .unwrap();
    let UpstreamAuth::Bearer { token } = &record.upstream_auth else {
        panic!()
    };
    let ring = Keyring::from_base64(&key, &[]).unwrap();
    assert_eq!(
        record
            .open_secret(&ring, "upstream_auth.token", token)
            .unwrap(),
        "tok-from-test"
    );
    let other = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
    assert!(
        record
            .open_secret(&other, "upstream_auth.token", token)
            .is_err()
    );
}

#[tokio::test]
async fn a_missing_secret_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Process::env_for(Backend::Sqlite, dir.path());
    env.extend(aws_env("mcpgw/does-not-exist"));
    let mut process = Process::start(env, dir.path());
    let code = process.wait_exit().await;
    assert_ne!(code, Some(0));
    let stderr = process.stderr();
    assert!(
        stderr.contains("secrets.sealing_key") && stderr.contains("mcpgw/does-not-exist"),
        "{stderr}"
    );
    assert!(!dir.path().join("registry.db").exists() || !stderr.is_empty());
}

#[tokio::test]
async fn the_config_file_can_be_named_by_an_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.toml");
    std::fs::write(&file, "anonymous_catalog = true\n").unwrap();
    let mut env = Process::env_for(Backend::Sqlite, dir.path());
    env.push(("MCPGW_REGISTRY_CONFIG".into(), file.display().to_string()));
    let mut process = Process::start(env, dir.path());
    process.wait_ready().await;
    let r = reqwest::get(format!("{}/v0.1/servers", process.base))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the file's anonymous_catalog applies"
    );
    assert!(dir.path().join("admin.key").exists());
    assert!(!dir.path().join("admin.key.pending").exists());
    process.kill9().await;
}

#[tokio::test]
async fn a_bad_config_value_exits_with_code_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Process::env_for(Backend::Sqlite, dir.path());
    env.push(("MCPGW_REGISTRY_STORE__POOL_SIZE".into(), "lots".into()));
    let mut process = Process::start(env, dir.path());
    assert_eq!(process.wait_exit().await, Some(2));
    let stderr = process.stderr();
    assert!(
        stderr.contains("store.pool_size") && stderr.contains("MCPGW_REGISTRY_STORE__POOL_SIZE"),
        "{stderr}"
    );
}
