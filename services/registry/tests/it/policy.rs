//! Scope documents (the policy) and callers authenticated by JWT, on both backends.

use mcpgw_test_support::TestIssuer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, server_body, spawn, spawn_with};

both_backends!(
    scope_documents_are_put_imported_and_deleted_each_change_bumping_the_version,
    a_bad_scope_document_is_refused_naming_the_path_and_changes_nothing,
    a_jwt_caller_gets_the_permissions_its_groups_scope_documents_grant,
    invalid_tokens_are_refused_with_401,
    ui_permissions_granted_on_named_servers_apply_to_those_servers_only,
);

async fn import(app: &TestApp, content_type: &str, body: &str, mode: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/scopes/import?mode={mode}", app.base))
        .bearer_auth(&app.key)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

const ANCHOR_ADMIN: &str = r#"{
  "_id": "mcp-registry-admin",
  "group_mappings": ["mcp-registry-admin"],
  "server_access": [{"server": "*", "methods": ["all"], "tools": ["all"]},
                    {"server": "api", "methods": ["tokens", "GET", "POST"]}],
  "ui_permissions": {"list_service": ["all"], "register_service": ["all"], "modify_service": ["all"],
                     "toggle_service": ["all"], "change_lifecycle_status": ["all"], "delete_service": ["all"]}
}"#;

const LEGACY_YAML: &str = "
group_mappings:
  registry-users-lob1: [registry-users-lob1]
registry-users-lob1:
- server: currenttime
  methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
  tools: [current_time_by_timezone]
";

async fn scope_documents_are_put_imported_and_deleted_each_change_bumping_the_version(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let empty = app.get("/api/v1/scopes").await;
    assert_eq!(empty.body, json!({"version": 0, "documents": []}));
    let (status, body) = import(&app, "application/json", ANCHOR_ADMIN, "merge").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["version"].as_u64(), body["imported"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, body) = import(&app, "application/yaml", LEGACY_YAML, "merge").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let all = app.get("/api/v1/scopes").await.body;
    let names: Vec<&str> = all["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mcp-registry-admin", "registry-users-lob1"]);
    assert_eq!(all["version"], 2);
    let one = app.get("/api/v1/scopes/registry-users-lob1").await;
    assert_eq!(one.body["group_mappings"], json!(["registry-users-lob1"]));

    let doc = json!({"name": "ops", "group_mappings": ["ops"], "server_access": [{"server": "weather", "methods": ["tools/list"]}]});
    let r = app.call(Method::PUT, "/api/v1/scopes/ops", Some(doc)).await;
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{:?}",
        r.body
    );

    let check = app
        .post("/api/v1/policy/check", json!({"groups": ["registry-users-lob1"], "server": "currenttime", "method": "tools/call", "tool": "current_time_by_timezone"}))
        .await;
    assert_eq!(check.body["allowed"], true, "{:?}", check.body);
    assert!(
        check.body["explanation"]
            .as_str()
            .unwrap()
            .contains("registry-users-lob1")
    );
    let check = app
        .post("/api/v1/policy/check", json!({"groups": ["registry-users-lob1"], "server": "currenttime", "method": "tools/call", "tool": "delete_everything"}))
        .await;
    assert_eq!(check.body["allowed"], false);

    let (status, body) = import(
        &app,
        "application/json",
        &format!("[{ANCHOR_ADMIN}]"),
        "replace",
    )
    .await;
    assert_eq!(
        (status, body["version"].as_u64()),
        (StatusCode::OK, Some(4))
    );
    assert_eq!(
        app.get("/api/v1/scopes").await.body["documents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = app
        .call(Method::DELETE, "/api/v1/scopes/mcp-registry-admin", None)
        .await;
    assert_eq!(r.body["version"], 5);
    let r = app
        .call(Method::DELETE, "/api/v1/scopes/mcp-registry-admin", None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "scope_not_found")
    );
    let actions: Vec<String> = app
        .audit("resource_type=scope")
        .await
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "scope.delete",
            "scope.import",
            "scope.put",
            "scope.import",
            "scope.import"
        ]
    );
}

async fn a_bad_scope_document_is_refused_naming_the_path_and_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    import(&app, "application/json", ANCHOR_ADMIN, "merge").await;
    let before = app.get("/api/v1/scopes").await.body;
    let bad = json!({"name": "x", "server_access": [{"server": "a", "methods": [5]}]});
    let r = app.call(Method::PUT, "/api/v1/scopes/x", Some(bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.field(), "server_access[0].methods[0]");
    let r = app
        .call(
            Method::PUT,
            "/api/v1/scopes/other-name",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "name")
    );
    let (status, body) = import(&app, "application/json", "{not json", "merge").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json")),
        "{body}"
    );
    let (status, body) = import(&app, "application/yaml", "a: [unclosed", "merge").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_yaml")),
        "{body}"
    );
    let (status, body) = import(
        &app,
        "application/yaml",
        "- name: ok\n- name: 'bad name with spaces'\n",
        "replace",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["field"].as_str().unwrap().contains("name"), "{body}");
    let (status, _) = import(&app, "text/plain", ANCHOR_ADMIN, "merge").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = import(&app, "application/json", ANCHOR_ADMIN, "overwrite").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mode"))
    );
    assert_eq!(
        app.get("/api/v1/scopes").await.body,
        before,
        "a refused change changed the policy"
    );
}

async fn jwt_app(backend: Backend) -> (TestApp, std::sync::Arc<TestIssuer>) {
    let idp = TestIssuer::start().await;
    let app = spawn_with(
        backend,
        &format!(
            "[auth]\npolicy_cache_seconds = 1\n[[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"mcpgw-registry\"]\n",
            idp.issuer
        ),
    )
    .await;
    (app, idp)
}

async fn a_jwt_caller_gets_the_permissions_its_groups_scope_documents_grant(backend: Backend) {
    let (app, idp) = jwt_app(backend).await;
    let doc = json!({"name": "publishers", "group_mappings": ["team-publishers"],
                     "ui_permissions": {"list_service": ["all"], "register_service": ["all"]}});
    assert_eq!(
        app.call(Method::PUT, "/api/v1/scopes/publishers", Some(doc))
            .await
            .status,
        StatusCode::OK
    );
    let alice = idp.sign(&idp.claims("alice", &["team-publishers"], "mcpgw-registry"));
    let me = app
        .call_as(Some(&alice), Method::GET, "/api/v1/me", None, &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(
        me.body["permissions"],
        json!(["servers:read", "servers:create"])
    );
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["display_name"], "alice");
    let r = app
        .call_as(
            Some(&alice),
            Method::POST,
            "/api/v1/servers",
            Some(server_body("by-alice")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["created_by"], format!("jwt:{}#alice", idp.issuer));
    let r = app
        .call_as(
            Some(&alice),
            Method::POST,
            "/api/v1/servers/by-alice/toggle",
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A policy change applies to the next request (made through this replica).
    let doc = json!({"name": "publishers", "group_mappings": ["team-publishers"],
                     "ui_permissions": {"list_service": ["all"], "register_service": ["all"], "toggle_service": ["all"]}});
    app.call(Method::PUT, "/api/v1/scopes/publishers", Some(doc))
        .await;
    let r = app
        .call_as(
            Some(&alice),
            Method::POST,
            "/api/v1/servers/by-alice/toggle",
            Some(json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // An identity whose groups map to nothing may do nothing.
    let bob = idp.sign(&idp.claims("bob", &["strangers"], "mcpgw-registry"));
    let r = app
        .call_as(Some(&bob), Method::GET, "/api/v1/servers", None, &[])
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    // Forged identity headers add nothing.
    let r = app
        .call_as(
            Some(&bob),
            Method::GET,
            "/api/v1/servers",
            None,
            &[("X-Groups", "team-publishers"), ("X-User", "alice")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn invalid_tokens_are_refused_with_401(backend: Backend) {
    let (app, idp) = jwt_app(backend).await;
    let mut expired = idp.claims("alice", &["g"], "mcpgw-registry");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let mut wrong_aud = idp.claims("alice", &["g"], "mcpgw-registry");
    wrong_aud["aud"] = json!("some-other-api");
    let mut id_token = idp.claims("alice", &["g"], "mcpgw-registry");
    id_token["typ"] = json!("ID");
    for (label, token) in [
        ("expired", idp.sign(&expired)),
        ("wrong audience", idp.sign(&wrong_aud)),
        ("ID token", idp.sign(&id_token)),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let r = app
            .call_as(Some(&token), Method::GET, "/api/v1/me", None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_token", "{label}");
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    // A token in the query string is never read.
    let good = idp.sign(&idp.claims("alice", &["g"], "mcpgw-registry"));
    let r = app
        .call_as(
            None,
            Method::GET,
            &format!("/api/v1/me?access_token={good}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The IdP goes down: cached keys keep working.
    assert_eq!(
        app.call_as(Some(&good), Method::GET, "/api/v1/me", None, &[])
            .await
            .status,
        StatusCode::OK
    );
    idp.set_up(false);
    let again = idp.sign(&idp.claims("alice", &["g"], "mcpgw-registry"));
    assert_eq!(
        app.call_as(Some(&again), Method::GET, "/api/v1/me", None, &[])
            .await
            .status,
        StatusCode::OK
    );
}

async fn ui_permissions_granted_on_named_servers_apply_to_those_servers_only(backend: Backend) {
    let (app, idp) = jwt_app(backend).await;
    for p in ["alpha", "beta", "gamma"] {
        app.register(server_body(p)).await;
    }
    let doc = json!({"name": "alpha-team", "group_mappings": ["alpha-team"],
                     "ui_permissions": {"list_service": ["/alpha", "beta"], "toggle_service": ["alpha"],
                                        "change_lifecycle_status": ["/alpha"]}});
    assert_eq!(
        app.call(Method::PUT, "/api/v1/scopes/alpha-team", Some(doc))
            .await
            .status,
        StatusCode::OK
    );
    let t = idp.sign(&idp.claims("carol", &["alpha-team"], "mcpgw-registry"));
    let as_carol = |method: Method, path: String, body: Option<Value>| {
        let (app, t) = (&app, t.clone());
        async move { app.call_as(Some(&t), method, &path, body, &[]).await }
    };
    let me = as_carol(Method::GET, "/api/v1/me".into(), None).await;
    assert_eq!(me.body["permissions"], json!([]));
    assert_eq!(me.body["scoped"]["servers:read"], json!(["alpha", "beta"]));
    let list = as_carol(Method::GET, "/api/v1/servers".into(), None).await;
    let paths: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["alpha", "beta"]);
    assert_eq!(
        as_carol(Method::GET, "/api/v1/servers/beta".into(), None)
            .await
            .status,
        StatusCode::OK
    );
    // A server the caller may not read looks like one that does not exist.
    let r = as_carol(Method::GET, "/api/v1/servers/gamma".into(), None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "server_not_found")
    );
    let r = as_carol(
        Method::POST,
        "/api/v1/servers/alpha/toggle".into(),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = as_carol(
        Method::POST,
        "/api/v1/servers/beta/toggle".into(),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = as_carol(
        Method::POST,
        "/api/v1/servers/alpha/lifecycle".into(),
        Some(json!({"to": "submitted", "reason": "r"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = as_carol(
        Method::POST,
        "/api/v1/servers/beta/lifecycle".into(),
        Some(json!({"to": "submitted", "reason": "r"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/api/v1/servers/beta").await.body["lifecycle"],
        "draft"
    );
}
