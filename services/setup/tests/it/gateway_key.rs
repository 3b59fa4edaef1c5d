//! The gateway-key step: a registry API key with `gateway:sync` kept in the secret gateways
//! read; replaced when it no longer authenticates.

use mcpgw_core::plan::Action;
use mcpgw_setup::Step;
use mcpgw_setup::steps::gateway_key::secret_id;
use registry::store::RegistryStore;

use crate::support::*;

/// The registry's answer to the snapshot request made with `key` (a gateway's first call).
async fn snapshot_status(registry: &registry::app::Running, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{}/api/v1/gateway/snapshot", registry.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn stored_key(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join(secret_id("mcpgw"))).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_key_is_created_kept_and_replaced_when_revoked() {
    let database = unique("setup_key").replace('-', "_");
    let (registry, _dir) = start_registry(&database).await;
    let secrets = tempfile::tempdir().unwrap();
    let mut run = Run::databases(&mongodb_url(), &database, &postgres_url(), secrets.path());
    run.only = vec![Step::GatewayKey];

    // Dry run: planned, nothing written.
    run.dry_run = true;
    let report = run.run().await;
    assert_ok(&report, &run);
    let planned = &report.step(Step::GatewayKey).unwrap().changes;
    assert_eq!(planned[0].action, Action::Create, "{}", run.captured.text());
    assert!(
        stored_key(secrets.path()).is_none(),
        "a dry run stores no key"
    );

    // First run: a key the registry accepts for the snapshot, and only for that.
    run.dry_run = false;
    let report = run.run().await;
    assert_ok(&report, &run);
    let first = stored_key(secrets.path()).expect("the key is stored");
    assert!(
        !run.captured.text().contains(&first),
        "the key is never printed"
    );
    assert_eq!(snapshot_status(&registry, &first).await, 200);
    let servers = reqwest::Client::new()
        .get(format!("http://{}/api/v1/servers", registry.addr))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(servers.status().as_u16(), 403, "gateway:sync only");

    // Second run: unchanged, same key.
    let report = run.run().await;
    assert_ok(&report, &run);
    assert!(report.changes().is_empty(), "{}", run.captured.text());
    assert_eq!(stored_key(secrets.path()).as_deref(), Some(first.as_str()));

    // Revoked in the registry: the next run replaces it, and says why.
    let store = registry::store::mongo::MongoStore::connect(
        &mongodb_url(),
        &registry::config::StoreConfig {
            url: String::new(),
            pool_size: 1,
            sqlite_synchronous: registry::config::SqliteSync::Full,
            backend: registry::config::RegistryStoreConfig {
                mongo_database: database.clone(),
                mongo_server_selection_timeout_ms: 5000,
                catalog_cache_ms: 0,
            },
        },
    )
    .await
    .unwrap();
    let (id, _) = registry::keys::parse(&first).unwrap();
    store
        .revoke_api_key(
            id,
            mcpgw_core::time::Timestamp::now(),
            &registry::store::AuditRecord::new(
                "test",
                mcpgw_core::auth::PrincipalKind::User,
                "api_key.revoke",
                "api_key",
                id,
                serde_json::json!({}),
            ),
        )
        .await
        .unwrap();
    let report = run.run().await;
    assert_ok(&report, &run);
    let change = &report.step(Step::GatewayKey).unwrap().changes[0];
    assert_eq!(change.action, Action::Update);
    assert_eq!(
        change.detail.as_deref(),
        Some("the stored key is revoked or expired")
    );
    let second = stored_key(secrets.path()).unwrap();
    assert_ne!(second, first);
    assert_eq!(snapshot_status(&registry, &second).await, 200);

    // A value that is not a key at all (edited by hand) is replaced too.
    std::fs::write(secrets.path().join(secret_id("mcpgw")), "not-a-key").unwrap();
    let report = run.run().await;
    assert_ok(&report, &run);
    assert_eq!(
        report.step(Step::GatewayKey).unwrap().changes[0]
            .detail
            .as_deref(),
        Some("the stored value is not an mcpgw API key")
    );
    assert_eq!(
        snapshot_status(&registry, &stored_key(secrets.path()).unwrap()).await,
        200
    );
}
