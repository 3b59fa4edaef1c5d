//! The realm step against a real Keycloak: each test owns a realm (deleted at its end) and
//! reads back what the step made with its own admin calls.

use std::path::Path;

use base64::Engine;
use mcpgw_core::plan::{Action, Change};
use mcpgw_setup::inputs::output;
use mcpgw_setup::keycloak::Admin;
use mcpgw_setup::{Report, Step};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{self, Run, assert_ok};

const M2M: &str = "mcpgw-m2m";
const WEB: &str = "mcpgw-web";

/// A realm of its own, its secrets directory, and an admin session to read it back.
struct Fixture {
    realm: String,
    dir: tempfile::TempDir,
    admin: Admin,
}

impl Fixture {
    async fn new() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let base = url::Url::parse(&support::keycloak_url()).expect("MCPGW_TEST_KEYCLOAK_URL");
        let admin = Admin::sign_in(
            reqwest::Client::new(),
            &base,
            "admin",
            SecretString::from(support::keycloak_admin_password()),
        )
        .await
        .expect("admin sign-in");
        Self {
            realm: support::unique("setup"),
            dir: tempfile::tempdir().unwrap(),
            admin,
        }
    }

    /// A run of the secrets and realm steps on this fixture's realm.
    fn run(&self) -> Run {
        let mut run = Run::keycloak(&self.realm, self.dir.path());
        run.only = vec![Step::Secrets, Step::Realm];
        run
    }

    /// GET under the realm (`""` = the realm itself); panics unless it succeeds.
    async fn get(&self, path: &str) -> Value {
        self.admin
            .get(&format!("/{}{path}", self.realm))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("GET /{}{path} is 404", self.realm))
    }

    async fn client(&self, client_id: &str) -> Value {
        let list = self.get(&format!("/clients?clientId={client_id}")).await;
        list.as_array()
            .and_then(|l| l.first())
            .cloned()
            .unwrap_or_else(|| panic!("no client {client_id}"))
    }

    async fn client_path(&self, client_id: &str) -> String {
        let id = self.client(client_id).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        format!("/{}/clients/{id}", self.realm)
    }

    /// GET under a client (`/client-secret`, `/protocol-mappers/models`).
    async fn of_client(&self, client_id: &str, path: &str) -> Value {
        let id = self.client(client_id).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.get(&format!("/clients/{id}{path}")).await
    }

    /// The mappers of a client with this name (several if something went wrong).
    async fn mappers(&self, client_id: &str, name: &str) -> Vec<Value> {
        let all = self.of_client(client_id, "/protocol-mappers/models").await;
        let all = all.as_array().unwrap().iter();
        all.filter(|m| m["name"] == name).cloned().collect()
    }

    /// The one mapper of a client with this name.
    async fn mapper(&self, client_id: &str, name: &str) -> Value {
        let mut found = self.mappers(client_id, name).await;
        assert_eq!(found.len(), 1, "mappers {name} on {client_id}: {found:?}");
        found.remove(0)
    }

    async fn user(&self, username: &str) -> Option<Value> {
        let list = self
            .get(&format!("/users?username={username}&exact=true"))
            .await;
        list.as_array().and_then(|l| l.first()).cloned()
    }

    /// Names of the groups a user is in.
    async fn groups_of(&self, user_id: &str) -> Vec<String> {
        names(&self.get(&format!("/users/{user_id}/groups")).await)
    }

    async fn service_account_groups(&self, client_id: &str) -> Vec<String> {
        let path = self.client_path(client_id).await;
        let user = self
            .admin
            .get(&format!("{path}/service-account-user"))
            .await
            .unwrap()
            .expect("the m2m client has a service account");
        self.groups_of(user["id"].as_str().unwrap()).await
    }

    fn secret_file(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(id))
            .unwrap_or_else(|e| panic!("secret file {id}: {e}"))
            .trim()
            .to_owned()
    }

    /// Best effort: a failed test leaves its realm behind, which no other test uses.
    async fn delete(self) {
        let _ = self.admin.delete(&format!("/{}", self.realm)).await;
    }
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn realm_changes(report: &Report) -> Vec<Change> {
    report
        .step(Step::Realm)
        .expect("the realm step ran")
        .changes
        .clone()
}

/// The change recorded for `object`; panics when there is none.
fn change_of<'c>(changes: &'c [Change], object: &str) -> &'c Change {
    changes
        .iter()
        .find(|c| c.object == object)
        .unwrap_or_else(|| panic!("no change for {object:?} in {changes:#?}"))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn first_run_creates_the_realm_as_specified() {
    let f = Fixture::new().await;
    let run = f.run();
    let report = run.run().await;
    assert_ok(&report, &run);
    let changes = realm_changes(&report);
    for object in [
        format!("realm {}", f.realm),
        "client scope mcp-servers-unrestricted/execute".to_owned(),
        "group mcp-servers-unrestricted".to_owned(),
        format!("client {M2M}"),
        format!("mapper groups on client {M2M}"),
        format!("default scope mcp-servers-unrestricted/read of client {M2M}"),
        format!("service account of client {M2M} in group mcp-servers-unrestricted"),
        format!("secret of client {M2M}"),
        "dev user dev-admin".to_owned(),
        "dev user dev-admin in group mcpgw-admins".to_owned(),
    ] {
        assert_eq!(
            change_of(&changes, &object).action,
            Action::Create,
            "{object}"
        );
    }

    // The realm and its settings.
    let realm = f.get("").await;
    assert_eq!(realm["enabled"], true);
    assert_eq!(realm["displayName"], "mcpgw");
    assert_eq!(realm["accessTokenLifespan"], 300);
    assert_eq!(realm["bruteForceProtected"], true);
    assert_eq!(realm["registrationAllowed"], false);
    assert_eq!(realm["sslRequired"], "external");

    // Client scopes, in tokens' `scope` claim.
    let scopes = f.get("/client-scopes").await;
    for name in [
        "mcp-registry-admin",
        "mcp-servers-unrestricted/read",
        "mcp-servers-unrestricted/execute",
        "mcp-registry-user",
    ] {
        let scope = scopes
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no client scope {name}"));
        assert_eq!(scope["protocol"], "openid-connect", "{name}");
        assert_eq!(
            scope["attributes"]["include.in.token.scope"], "true",
            "{name}"
        );
        assert_eq!(
            scope["attributes"]["display.on.consent.screen"], "false",
            "{name}"
        );
    }
    let execute = scopes
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mcp-servers-unrestricted/execute")
        .unwrap();
    assert_eq!(
        execute["description"],
        "Call every tool of every MCP server"
    );

    // Top-level groups.
    let groups = names(&f.get("/groups").await);
    assert_eq!(
        groups,
        [
            "mcp-registry-users",
            "mcp-servers-unrestricted",
            "mcpgw-admins"
        ]
    );

    // The web client: confidential, code flow with PKCE, the auth-server's URLs.
    let web = f.client(WEB).await;
    assert_eq!(web["publicClient"], false);
    assert_eq!(web["standardFlowEnabled"], true);
    assert_eq!(web["directAccessGrantsEnabled"], false);
    assert_eq!(web["implicitFlowEnabled"], false);
    assert_eq!(web["serviceAccountsEnabled"], false);
    assert_eq!(web["name"], "mcpgw web login");
    assert_eq!(web["attributes"]["pkce.code.challenge.method"], "S256");
    assert_eq!(
        web["attributes"]["post.logout.redirect.uris"],
        "https://auth.example.test/login"
    );
    assert_eq!(
        web["redirectUris"],
        json!(["https://auth.example.test/callback"])
    );
    assert_eq!(web["webOrigins"], json!(["https://auth.example.test"]));

    // The m2m client: client credentials only.
    let m2m = f.client(M2M).await;
    assert_eq!(m2m["publicClient"], false);
    assert_eq!(m2m["serviceAccountsEnabled"], true);
    assert_eq!(m2m["standardFlowEnabled"], false);
    assert_eq!(m2m["directAccessGrantsEnabled"], false);
    assert_eq!(m2m["redirectUris"], json!([]));
    assert_eq!(
        f.service_account_groups(M2M).await,
        ["mcp-servers-unrestricted"]
    );

    // Mappers of both clients, and the m2m client's default scopes.
    for client_id in [WEB, M2M] {
        let groups = f.mapper(client_id, "groups").await;
        assert_eq!(groups["protocolMapper"], "oidc-group-membership-mapper");
        assert_eq!(groups["config"]["claim.name"], "groups");
        assert_eq!(groups["config"]["full.path"], "false");
        let audience = f.mapper(client_id, "gateway-audience").await;
        assert_eq!(audience["protocolMapper"], "oidc-audience-mapper");
        assert_eq!(
            audience["config"]["included.custom.audience"],
            "mcp-gateway"
        );
    }
    let defaults = names(&f.of_client(M2M, "/default-client-scopes").await);
    for name in [
        "mcp-servers-unrestricted/read",
        "mcp-servers-unrestricted/execute",
        // Keycloak's own defaults stay attached.
        "profile",
    ] {
        assert!(defaults.iter().any(|d| d == name), "{name} in {defaults:?}");
    }

    // Both clients' secrets are the stored ones.
    for client_id in [WEB, M2M] {
        let secret = f.of_client(client_id, "/client-secret").await;
        assert_eq!(
            secret["value"].as_str().unwrap(),
            f.secret_file(&format!("mcpgw/keycloak/clients/{client_id}")),
            "secret of {client_id}"
        );
    }

    // Dev users: a complete profile (else Keycloak 26 refuses logins), groups, a password.
    for (username, group) in [
        ("dev-admin", "mcpgw-admins"),
        ("dev-user", "mcp-registry-users"),
    ] {
        let user = f
            .user(username)
            .await
            .unwrap_or_else(|| panic!("no {username}"));
        assert_eq!(user["enabled"], true);
        assert_eq!(user["emailVerified"], true);
        assert_eq!(user["email"], format!("{username}@example.test"));
        assert_eq!(user["firstName"], "Dev");
        assert!(user["lastName"].as_str().is_some_and(|l| !l.is_empty()));
        let id = user["id"].as_str().unwrap();
        assert_eq!(f.groups_of(id).await, [group]);
        let credentials = f.get(&format!("/users/{id}/credentials")).await;
        assert!(
            credentials
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "password"),
            "{username} has no password: {credentials}"
        );
    }

    // A real client-credentials token carries the gateway's audience, the groups and scopes.
    let token_url = format!(
        "{}/realms/{}/protocol/openid-connect/token",
        support::keycloak_url().trim_end_matches('/'),
        f.realm
    );
    let answer: Value = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", M2M),
            (
                "client_secret",
                &f.secret_file("mcpgw/keycloak/clients/mcpgw-m2m"),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"));
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let audience = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => panic!("aud is {other}"),
    };
    assert!(
        audience.iter().any(|a| a == "mcp-gateway"),
        "aud {audience:?}"
    );
    assert_eq!(claims["groups"], json!(["mcp-servers-unrestricted"]));
    let scope = claims["scope"].as_str().unwrap_or_default();
    assert!(
        scope
            .split(' ')
            .any(|s| s == "mcp-servers-unrestricted/execute"),
        "scope {scope:?}"
    );
    f.delete().await;
}

#[tokio::test]
async fn second_run_changes_nothing() {
    let f = Fixture::new().await;
    let first = f.run();
    assert_ok(&first.run().await, &first);
    let second = f.run();
    let report = second.run().await;
    assert_ok(&report, &second);
    assert!(
        report.changes().is_empty(),
        "the second run changed {:#?}",
        report.changes()
    );
    let unchanged = realm_changes(&report);
    assert_eq!(
        change_of(&unchanged, &format!("secret of client {M2M}")).action,
        Action::Unchanged
    );
    assert!(
        second.captured.text().contains("no changes"),
        "{}",
        second.captured.text()
    );
    f.delete().await;
}

#[tokio::test]
async fn dry_run_on_a_new_realm_plans_and_writes_nothing() {
    let f = Fixture::new().await;
    let mut run = f.run();
    run.dry_run = true;
    let report = run.run().await;
    assert_ok(&report, &run);
    let changes = realm_changes(&report);
    assert_eq!(
        change_of(&changes, &format!("realm {}", f.realm)).action,
        Action::Create
    );
    for object in [
        format!("client {WEB}"),
        format!("mapper gateway-audience on client {WEB}"),
        "group mcpgw-admins".to_owned(),
        format!("service account of client {M2M} in group mcp-servers-unrestricted"),
        "dev user dev-user in group mcp-registry-users".to_owned(),
    ] {
        assert_eq!(
            change_of(&changes, &object).action,
            Action::Create,
            "{object}"
        );
    }
    // The secrets step only planned the secret, so there is nothing to give Keycloak yet.
    assert_eq!(
        change_of(&changes, &format!("secret of client {M2M}")),
        &Change::update(
            format!("secret of client {M2M}"),
            "secret not generated yet"
        )
    );
    assert!(run.captured.text().contains("nothing was changed"));
    let (status, _, _) = f
        .admin
        .send(Method::GET, &format!("/{}", f.realm), None)
        .await
        .unwrap();
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "the realm was created"
    );
    assert_eq!(files_under(f.dir.path()), Vec::<std::path::PathBuf>::new());
    f.delete().await;
}

#[tokio::test]
async fn drift_is_repaired() {
    let f = Fixture::new().await;
    let first = f.run();
    assert_ok(&first.run().await, &first);

    // Drift, as a person at the admin console might cause it.
    let m2m_path = f.client_path(M2M).await;
    let groups_mapper = f.mapper(M2M, "groups").await;
    f.admin
        .delete(&format!(
            "{m2m_path}/protocol-mappers/models/{}",
            groups_mapper["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    // A mapper of the spec's name but of another type (Keycloak keeps a mapper's type).
    let web_path = f.client_path(WEB).await;
    let audience = f.mapper(WEB, "gateway-audience").await;
    f.admin
        .delete(&format!(
            "{web_path}/protocol-mappers/models/{}",
            audience["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    f.admin
        .post(
            &format!("{web_path}/protocol-mappers/models"),
            &json!({
                "name": "gateway-audience", "protocol": "openid-connect",
                "protocolMapper": "oidc-hardcoded-claim-mapper",
                "config": {"claim.name": "aud2", "claim.value": "x", "access.token.claim": "true"},
            }),
        )
        .await
        .unwrap();
    let mut client = f.client(M2M).await;
    client["standardFlowEnabled"] = json!(true);
    f.admin.put(&m2m_path, Some(&client)).await.unwrap();
    let sa = f
        .admin
        .get(&format!("{m2m_path}/service-account-user"))
        .await
        .unwrap()
        .unwrap();
    let sa_id = sa["id"].as_str().unwrap();
    let group_id = |name: &'static str| {
        let f = &f;
        async move {
            f.get("/groups")
                .await
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == name)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let unrestricted = group_id("mcp-servers-unrestricted").await;
    f.admin
        .delete(&format!("/{}/users/{sa_id}/groups/{unrestricted}", f.realm))
        .await
        .unwrap();
    f.admin
        .post(&format!("{m2m_path}/client-secret"), &json!({}))
        .await
        .unwrap();
    let registry_users = group_id("mcp-registry-users").await;
    f.admin
        .delete(&format!("/{}/groups/{registry_users}", f.realm))
        .await
        .unwrap();
    f.admin
        .put(
            &format!("/{}", f.realm),
            Some(&json!({"accessTokenLifespan": 3600})),
        )
        .await
        .unwrap();
    // The drift is real (else this test would prove nothing).
    assert!(f.service_account_groups(M2M).await.is_empty());
    let stored = f.secret_file("mcpgw/keycloak/clients/mcpgw-m2m");
    let regenerated = f.of_client(M2M, "/client-secret").await;
    assert_ne!(regenerated["value"].as_str().unwrap(), stored);

    let second = f.run();
    let report = second.run().await;
    assert_ok(&report, &second);
    let changes = realm_changes(&report);
    let expect = |object: String, action: Action, detail: Option<&str>| {
        let c = change_of(&changes, &object);
        assert_eq!(c.action, action, "{c}");
        if let Some(d) = detail {
            assert!(c.detail.as_deref().is_some_and(|x| x.contains(d)), "{c}");
        }
    };
    expect(
        format!("realm {}", f.realm),
        Action::Update,
        Some("accessTokenLifespan"),
    );
    expect("group mcp-registry-users".into(), Action::Create, None);
    expect(
        format!("client {M2M}"),
        Action::Update,
        Some("standardFlowEnabled"),
    );
    expect(
        format!("mapper groups on client {M2M}"),
        Action::Create,
        None,
    );
    expect(
        format!("mapper gateway-audience on client {WEB}"),
        Action::Update,
        Some("protocolMapper"),
    );
    expect(
        format!("service account of client {M2M} in group mcp-servers-unrestricted"),
        Action::Create,
        None,
    );
    expect(format!("secret of client {M2M}"), Action::Update, None);
    expect(
        "dev user dev-user in group mcp-registry-users".into(),
        Action::Create,
        None,
    );
    // What did not drift is reported unchanged.
    expect(format!("client {WEB}"), Action::Unchanged, None);
    expect("group mcpgw-admins".into(), Action::Unchanged, None);
    // The detail names fields, never the secret.
    let text = second.captured.text();
    assert!(!text.contains(&stored), "the output shows the secret");

    // Back as specified.
    assert_eq!(f.get("").await["accessTokenLifespan"], 300);
    assert_eq!(f.client(M2M).await["standardFlowEnabled"], false);
    assert_eq!(
        f.service_account_groups(M2M).await,
        ["mcp-servers-unrestricted"]
    );
    let secret = f.of_client(M2M, "/client-secret").await;
    assert_eq!(secret["value"].as_str().unwrap(), stored);
    f.mapper(M2M, "groups").await;
    let audience = f.mapper(WEB, "gateway-audience").await;
    assert_eq!(audience["protocolMapper"], "oidc-audience-mapper");
    assert_eq!(
        audience["config"]["included.custom.audience"],
        "mcp-gateway"
    );
    assert!(
        names(&f.get("/groups").await)
            .iter()
            .any(|g| g == "mcp-registry-users")
    );
    let dev_user = f.user("dev-user").await.unwrap();
    assert_eq!(
        f.groups_of(dev_user["id"].as_str().unwrap()).await,
        ["mcp-registry-users"]
    );

    let third = f.run();
    let report = third.run().await;
    assert_ok(&report, &third);
    assert!(
        report.changes().is_empty(),
        "the run after the repair changed {:#?}",
        report.changes()
    );
    f.delete().await;
}

#[tokio::test]
async fn prod_skips_dev_users() {
    let f = Fixture::new().await;
    let mut run = f.run();
    run.set(output::ENVIRONMENT, "prod");
    let report = run.run().await;
    assert_ok(&report, &run);
    let changes = realm_changes(&report);
    for username in ["dev-admin", "dev-user"] {
        assert_eq!(
            change_of(&changes, &format!("dev user {username}")),
            &Change::skipped(format!("dev user {username}"), "environment is prod")
        );
        assert!(f.user(username).await.is_none(), "{username} exists");
    }
    assert!(!f.dir.path().join("mcpgw/keycloak/dev-users").exists());
    // The clients are there, with their secrets.
    assert!(
        f.dir
            .path()
            .join("mcpgw/keycloak/clients/mcpgw-m2m")
            .exists()
    );
    assert_eq!(f.client(M2M).await["serviceAccountsEnabled"], true);
    f.delete().await;
}

#[tokio::test]
async fn missing_stored_secrets_stop_the_run_before_any_write() {
    let f = Fixture::new().await;
    let mut run = f.run();
    // Without the secrets step nothing generates the client secrets.
    run.only = vec![Step::Realm];
    let report = run.run().await;
    let error = report.error.as_ref().expect("the run fails");
    assert_eq!(
        error.class,
        mcpgw_setup::error::FailureClass::Input,
        "{error}"
    );
    assert!(
        error.message.contains("mcpgw/keycloak/clients/mcpgw-m2m"),
        "{error}"
    );
    assert!(
        error
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("secrets step")),
        "{error}"
    );
    let (status, _, _) = f
        .admin
        .send(Method::GET, &format!("/{}", f.realm), None)
        .await
        .unwrap();
    assert_eq!(
        status,
        reqwest::StatusCode::NOT_FOUND,
        "the realm was created"
    );
    f.delete().await;
}

#[tokio::test]
async fn concurrent_runs_both_succeed() {
    let f = Fixture::new().await;
    // The secrets first: two secrets steps at once would each generate their own.
    let mut secrets = f.run();
    secrets.only = vec![Step::Secrets];
    assert_ok(&secrets.run().await, &secrets);
    let (mut a, mut b) = (f.run(), f.run());
    a.only = vec![Step::Realm];
    b.only = vec![Step::Realm];
    // Each one's creates race the other's: a 409 means read it back and go on.
    let (ra, rb) = tokio::join!(a.run(), b.run());
    assert_ok(&ra, &a);
    assert_ok(&rb, &b);
    let after = f.run();
    let report = after.run().await;
    assert_ok(&report, &after);
    assert!(
        report.changes().is_empty(),
        "the run after two concurrent ones changed {:#?}",
        report.changes()
    );
    f.delete().await;
}
