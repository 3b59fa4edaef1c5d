//! The whole run as after `terraform apply`: Terraform outputs in a file, the Keycloak admin
//! password in Secrets Manager (the emulator), the registry, auth-server and gateway running
//! (in-process, on real sockets) on MongoDB and PostgreSQL; then the binary, twice.

use std::process::Command;

use aws_sdk_secretsmanager::config::Credentials;
use mcpgw_core::secrets::{SecretsManagerConfig, secrets_manager_client};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_mcpgw-setup");

/// The three services, as ECS would run them before setup.
struct Services {
    registry: registry::app::Running,
    _registry_dir: tempfile::TempDir,
    auth: auth_server::app::Running,
    gateway: gateway::app::Running,
    _dir: tempfile::TempDir,
}

async fn start_services(mongo_db: &str, postgres_url: &str, issuer: &str) -> Services {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let key = || {
        mcpgw_core::secrets::Keyring::generate_base64()
            .expose_secret()
            .to_owned()
    };
    let (registry, registry_dir) = start_registry(mongo_db).await;
    let registry_url = format!("http://{}", registry.addr);
    let created: Value = reqwest::Client::new()
        .post(format!("{registry_url}/api/v1/api-keys"))
        .bearer_auth(registry.bootstrap_key.as_ref().unwrap())
        .json(&json!({"name": "gateway", "permissions": ["gateway:sync"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gateway_key = created["key"].as_str().expect("a gateway key").to_owned();
    let auth = auth_server::app::start(
        auth_server::config::AuthConfig::from_toml_layers(&[&format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}/auth\"\n\
             [store]\nurl = \"{postgres_url}\"\n[session]\ncookie_secure = false\n\
             [secrets.sealing_key]\nvalue = \"{}\"\n",
            dir.path().display(),
            key()
        )])
        .unwrap(),
    )
    .await
    .expect("auth-server starts");
    let gateway = gateway::app::start(
        gateway::config::GatewayConfig::from_toml_layers(&[&format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}/gateway\"\n\
             instance_id = \"gw1\"\nallowed_hosts = [\"127.0.0.1\"]\n\
             [registry]\nurl = \"{registry_url}\"\n[registry.api_key]\nvalue = \"{gateway_key}\"\n\
             [sync]\npoll_wait_seconds = 2\nretry_seconds = 1\n\
             [secrets.sealing_key]\nvalue = \"{}\"\n[secrets.session_key]\nvalue = \"{}\"\n\
             [[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"mcp-gateway\"]\n",
            dir.path().display(),
            key(),
            key()
        )])
        .unwrap(),
    )
    .await
    .expect("gateway starts");
    Services {
        registry,
        _registry_dir: registry_dir,
        auth,
        gateway,
        _dir: dir,
    }
}

fn moto_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

async fn moto() -> aws_sdk_secretsmanager::Client {
    secrets_manager_client(
        &SecretsManagerConfig {
            region: "us-east-1".into(),
            endpoint_url: moto_url(),
        },
        Some(moto_credentials()),
    )
    .await
}

fn output(value: &str) -> Value {
    json!({"value": value, "type": "string", "sensitive": false})
}

/// Runs the binary on `outputs` with the emulator's credentials.
fn setup(outputs: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGW_SETUP_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "--terraform-outputs",
            outputs,
            "--aws-endpoint-url",
            &moto_url(),
        ])
        .args(extra)
        // The test databases have no TLS; deployments keep the default (on).
        .env("MCPGW_SETUP_DATABASE_TLS", "false")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        out.status.code().expect("exited"),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_set_up_validated_end_to_end_and_a_second_run_changes_nothing() {
    let realm = unique("setup-e2e");
    let prefix = unique("mcpgw-e2e");
    let mongo_db = unique("setup_e2e").replace('-', "_");
    let postgres = PgDatabase::create().await;
    let kc = keycloak_url();
    let issuer = format!("{kc}/realms/{realm}");
    let services = start_services(&mongo_db, &postgres.url, &issuer).await;

    // What Terraform creates: the Keycloak admin secret.
    let sm = moto().await;
    let admin_secret = format!("{prefix}/keycloak-admin");
    sm.create_secret()
        .name(&admin_secret)
        .secret_string(
            json!({"username": "admin", "password": keycloak_admin_password()}).to_string(),
        )
        .send()
        .await
        .unwrap();

    // The database master users' secrets, as DocumentDB and Aurora keep them.
    let mongo_user = unique("setup-e2e");
    let mongo_password = unique("pw");
    mongodb::Client::with_uri_str(mongodb_url())
        .await
        .unwrap()
        .database("admin")
        .run_command(mongodb::bson::doc! {
            "createUser": &mongo_user, "pwd": &mongo_password,
            "roles": [{"role": "root", "db": "admin"}]
        })
        .await
        .unwrap();
    let mongo_endpoint = {
        let u = url::Url::parse(&mongodb_url()).unwrap();
        format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
    };
    let pg = url::Url::parse(&postgres.url).unwrap();
    for (name, user, password) in [
        ("documentdb", mongo_user.as_str(), mongo_password.as_str()),
        ("aurora", pg.username(), pg.password().unwrap()),
    ] {
        sm.create_secret()
            .name(format!("{prefix}/{name}-master"))
            .secret_string(json!({"username": user, "password": password}).to_string())
            .send()
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("realm.toml");
    std::fs::write(&spec, spec_for_realm(&realm)).unwrap();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        json!({
            "environment": output("dev"),
            "aws_region": output("us-east-1"),
            "keycloak_url": output(&kc),
            "keycloak_admin_secret_id": output(&admin_secret),
            "registry_url": output(&format!("http://{}", services.registry.addr)),
            "gateway_url": output(&services.gateway.url()),
            "auth_server_url": output(&format!("http://{}", services.auth.addr)),
            "documentdb_endpoint": output(&mongo_endpoint),
            "documentdb_secret_id": output(&format!("{prefix}/documentdb-master")),
            "documentdb_database": output(&mongo_db),
            "aurora_endpoint": output(&format!("{}:{}", pg.host_str().unwrap(), pg.port().unwrap())),
            "aurora_secret_id": output(&format!("{prefix}/aurora-master")),
            "aurora_database": output(postgres.name()),
            "secret_prefix": output(&prefix),
            "an_output_setup_does_not_read": {"value": ["ignored"], "type": "list", "sensitive": false}
        })
        .to_string(),
    )
    .unwrap();
    let outputs = outputs.to_str().unwrap();
    let spec_arg = ["--spec", spec.to_str().unwrap()];

    let (code, text) = setup(outputs, &spec_arg);
    assert_eq!(code, 0, "the first run succeeds:\n{text}");
    // Shown with --nocapture: docs/deployment.md quotes these runs.
    println!("--- first run ---\n{text}");
    for step in mcpgw_setup::Step::ALL.map(|s| s.name()) {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("] {step} ")) && !l.contains("FAILED")),
            "step {step} reported:\n{text}"
        );
    }
    assert!(text.contains("create    realm"), "{text}");
    assert!(
        text.contains("lists 2 tools: discover_tools, call_tool"),
        "{text}"
    );

    // The generated client secrets are in Secrets Manager, and Keycloak holds the same.
    let stored = sm
        .get_secret_value()
        .secret_id(format!("{prefix}/keycloak/clients/mcpgw-m2m"))
        .send()
        .await
        .expect("the m2m client secret is stored")
        .secret_string()
        .unwrap()
        .to_owned();
    assert!(stored.len() >= 40, "a generated secret");
    assert!(!text.contains(&stored), "secrets are never printed");

    let (code, text) = setup(outputs, &spec_arg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("done: no changes"),
        "a second run changes nothing:\n{text}"
    );
    println!("--- second run ---\n{text}");

    let (code, text) = setup(outputs, &[&spec_arg[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("plan: 0 to create, 0 to update"), "{text}");
    println!("--- dry run ---\n{text}");

    if let Ok(admin) = mcpgw_setup::keycloak::Admin::sign_in(
        reqwest::Client::new(),
        &kc.parse().unwrap(),
        "admin",
        secrecy::SecretString::from(keycloak_admin_password()),
    )
    .await
    {
        let _ = admin.delete(&format!("/{realm}")).await;
    }
    drop(services);
}
