//! The behaviour suite of `/api/v1/agents`, run on both backends. Agent cards are served by a
//! real HTTP server in the test (axum on a loopback port); "dead" is a port nobody listens on.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn, spawn_with};

both_backends!(
    a_registered_agent_reads_back_and_lists_filter_and_page,
    registration_by_url_fetches_the_card_and_refuses_what_cannot_be_used,
    bad_input_names_the_field_and_changes_nothing,
    updates_follow_the_revision_and_delete_refuses_an_agent_in_use,
    the_lifecycle_and_permissions_are_the_servers_ones,
    a_health_check_flags_a_served_card_that_changed_after_approval,
    every_agent_write_is_audited,
    search_finds_agents_by_their_skills,
);

fn card(name: &str) -> Value {
    json!({
        "name": name,
        "description": format!("{name} plans business travel"),
        "url": "http://127.0.0.1:9/a2a",
        "version": "1.0.0",
        "protocolVersion": "0.3.0",
        "provider": {"organization": "Example Corp"},
        "capabilities": {"streaming": true},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["application/json"],
        "skills": [{
            "id": "book-flight",
            "name": "Book flight",
            "description": "Books itineraries with airline partners",
            "tags": ["flights"],
            "examples": ["Book me a flight to Lisbon"]
        }]
    })
}

fn agent_body(path: &str) -> Value {
    json!({
        "path": path,
        "card": card(&format!("Agent {path}")),
        "tags": ["travel"],
        "governance": {"owner_team": "platform"}
    })
}

/// A real HTTP server publishing an agent card that the test can change, plus an oversized
/// answer at `/big.json`.
struct CardServer {
    base: String,
    card: Arc<Mutex<Value>>,
}

impl CardServer {
    async fn start(card: Value) -> Self {
        let shared = Arc::new(Mutex::new(card));
        let served = shared.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/agent-card.json",
                axum::routing::get(move || {
                    let card = served.lock().unwrap().clone();
                    async move { axum::Json(card) }
                }),
            )
            .route(
                "/big.json",
                axum::routing::get(|| async { "x".repeat(2 * 1024 * 1024) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self {
            base: format!("http://{addr}"),
            card: shared,
        }
    }

    fn card_url(&self) -> String {
        format!("{}/.well-known/agent-card.json", self.base)
    }
}

/// A loopback port with nothing listening.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn register_agent(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/v1/agents", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn advance_agent(app: &TestApp, path: &str, to: &str) {
    for state in [
        "submitted",
        "security_review",
        "approved_dev",
        "approved_prod",
        "deprecated",
        "retired",
    ] {
        let r = app
            .post(
                &format!("/api/v1/agents/{path}/lifecycle"),
                json!({"to": state, "reason": "test"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{state}: {:?}", r.body);
        if state == to {
            return;
        }
    }
    panic!("{to} is not on the lifecycle chain");
}

async fn paths(app: &TestApp, query: &str) -> Vec<String> {
    let r = app.get(&format!("/api/v1/agents?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_registered_agent_reads_back_and_lists_filter_and_page(backend: Backend) {
    let app = spawn(backend).await;
    let created = register_agent(&app, agent_body("travel")).await;
    assert_eq!(created["lifecycle"], "draft");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["revision"], 1);
    assert_eq!(created["card_status"], "unapproved");
    assert_eq!(created["card"]["skills"][0]["id"], "book-flight");
    assert_eq!(created["card"]["protocolVersion"], "0.3.0");
    assert_eq!(
        created["card_url"], "http://127.0.0.1:9/.well-known/agent-card.json",
        "without card_url the card's own well-known address is used"
    );
    assert_eq!(created["card_hash"].as_str().unwrap().len(), 64);
    let got = app.get("/api/v1/agents/travel").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["etag"], "\"1\"");
    assert_eq!(got.body, created);
    let missing = app.get("/api/v1/agents/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "agent_not_found");
    let again = app.post("/api/v1/agents", agent_body("travel")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "agent_exists");

    for (path, team, tag) in [("alpha", "sales", "crm"), ("beta", "finance", "ledger")] {
        let mut body = agent_body(path);
        body["governance"]["owner_team"] = json!(team);
        body["tags"] = json!([tag]);
        register_agent(&app, body).await;
    }
    app.post("/api/v1/agents/beta/toggle", json!({"enabled": false}))
        .await;
    advance_agent(&app, "alpha", "submitted").await;
    assert_eq!(paths(&app, "").await, ["alpha", "beta", "travel"]);
    assert_eq!(paths(&app, "owner=finance").await, ["beta"]);
    assert_eq!(paths(&app, "tag=crm").await, ["alpha"]);
    assert_eq!(paths(&app, "lifecycle=submitted").await, ["alpha"]);
    assert_eq!(paths(&app, "enabled=false").await, ["beta"]);
    assert_eq!(paths(&app, "q=AGENT%20TRAVEL").await, ["travel"]);
    assert_eq!(
        paths(&app, "q=book%20flight").await.len(),
        3,
        "skill names are searched"
    );
    let bad = app.get("/api/v1/agents?lifecycle=live").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.field(), "lifecycle");

    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let r = app.get(&format!("/api/v1/agents?{query}")).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
        seen.push(r.body["items"][0]["path"].as_str().unwrap().to_owned());
        match r.body["next_cursor"].as_str() {
            Some(c) => query = format!("limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "beta", "travel"]);
}

async fn registration_by_url_fetches_the_card_and_refuses_what_cannot_be_used(backend: Backend) {
    let app = spawn(backend).await;
    let server = CardServer::start(card("Remote planner")).await;
    let created = register_agent(
        &app,
        json!({"path": "remote", "card_url": server.card_url(), "governance": {"owner_team": "t"}}),
    )
    .await;
    assert_eq!(created["card"]["name"], "Remote planner");
    assert_eq!(created["card_url"], server.card_url());

    let dead = format!(
        "http://127.0.0.1:{}/.well-known/agent-card.json",
        dead_port().await
    );
    let mut bad_card = card("x");
    bad_card["name"] = json!("");
    let bad_server = CardServer::start(bad_card).await;
    for (url, detail) in [
        (dead, "connection_refused"),
        (format!("{}/big.json", server.base), "too_large"),
        (format!("{}/missing.json", server.base), "http_status 404"),
        (bad_server.card_url(), "card.name"),
    ] {
        let r = app
            .post(
                "/api/v1/agents",
                json!({"path": "other", "card_url": url, "governance": {"owner_team": "t"}}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "agent_card_unusable", "{url}");
        assert_eq!(r.field(), "card_url", "{url}");
        assert!(
            r.body["detail"].as_str().unwrap().contains(detail),
            "{url}: {:?}",
            r.body
        );
    }
    assert_eq!(paths(&app, "").await, ["remote"], "nothing else was stored");

    // The egress policy applies to the card URL before anything is fetched.
    let strict = spawn_with(backend, "[egress]\nallow_loopback = false").await;
    for (field, body) in [
        (
            "card_url",
            json!({"path": "remote", "card_url": server.card_url(), "governance": {"owner_team": "t"}}),
        ),
        (
            "card.url",
            json!({"path": "remote", "card": card("x"), "governance": {"owner_team": "t"}}),
        ),
    ] {
        let r = strict.post("/api/v1/agents", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.code(), "egress_denied");
        assert_eq!(r.field(), field);
    }
}

async fn bad_input_names_the_field_and_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let long = "x".repeat(5000);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"path": "a1", "governance": {"owner_team": "t"}}),
            "card",
        ),
        (
            json!({"card": card("x"), "governance": {"owner_team": "t"}}),
            "path",
        ),
        (
            json!({"path": "api", "card": card("x"), "governance": {"owner_team": "t"}}),
            "path",
        ),
        (
            json!({"path": "a1", "card": card("x"), "governance": {"owner_team": " "}}),
            "governance.owner_team",
        ),
        (
            json!({"path": "a1", "card": card("x"), "tags": ["Not OK"], "governance": {"owner_team": "t"}}),
            "tags[0]",
        ),
        (
            json!({"path": "a1", "card": card("x"), "extra": 1, "governance": {"owner_team": "t"}}),
            "extra",
        ),
        (
            json!({"path": "a1", "card": card("x"), "card_url": "ftp://x/", "governance": {"owner_team": "t"}}),
            "card_url",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/api/v1/agents", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.field(), field, "{body}: {:?}", r.body);
    }
    for (change, field) in [
        (json!({"name": ""}), "card.name"),
        (json!({"url": "not a url"}), "card.url"),
        (json!({"description": long}), "card.description"),
        (
            json!({"skills": [{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]}),
            "card.skills[1].id",
        ),
        (
            json!({"skills": [{"id": "a", "name": "A", "examples": vec!["e"; 17]}]}),
            "card.skills[0].examples",
        ),
        (
            json!({"securitySchemes": {"k": "x".repeat(40_000)}}),
            "card.securitySchemes",
        ),
        (json!({"version": ""}), "card.version"),
    ] {
        let mut c = card("x");
        c.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let r = app
            .post(
                "/api/v1/agents",
                json!({"path": "a1", "card": c, "governance": {"owner_team": "t"}}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {:?}",
            r.body
        );
        assert_eq!(r.field(), field, "{:?}", r.body);
    }
    assert!(paths(&app, "").await.is_empty());
    assert!(app.audit("action=agent.create").await.is_empty());
}

async fn updates_follow_the_revision_and_delete_refuses_an_agent_in_use(backend: Backend) {
    let app = spawn(backend).await;
    register_agent(&app, agent_body("travel")).await;
    let mut body = agent_body("travel");
    body["card"]["version"] = json!("2.0.0");
    let stale = app
        .call_as(
            Some(&app.key),
            Method::PUT,
            "/api/v1/agents/travel",
            Some(body.clone()),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "revision_conflict");
    assert_eq!(app.get("/api/v1/agents/travel").await.body["revision"], 1);
    let put = app
        .call_as(
            Some(&app.key),
            Method::PUT,
            "/api/v1/agents/travel",
            Some(body),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["revision"], 2);
    assert_eq!(put.body["card"]["version"], "2.0.0");
    let patched = app
        .call(
            Method::PATCH,
            "/api/v1/agents/travel",
            Some(json!({"tags": ["air"], "governance": {"risk_level": "high"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["tags"], json!(["air"]));
    assert_eq!(patched.body["governance"]["risk_level"], "high");
    assert_eq!(patched.body["governance"]["owner_team"], "platform");
    assert_eq!(
        patched.body["card"]["version"], "2.0.0",
        "unnamed fields are kept"
    );
    let bad_patch = app
        .call(
            Method::PATCH,
            "/api/v1/agents/travel",
            Some(json!({"card": {"name": ""}})),
        )
        .await;
    assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_patch.field(), "card.name");
    let renamed = app
        .call(
            Method::PATCH,
            "/api/v1/agents/travel",
            Some(json!({"path": "other"})),
        )
        .await;
    assert_eq!(renamed.field(), "path");

    let off = app
        .post("/api/v1/agents/travel/toggle", json!({"enabled": false}))
        .await;
    assert_eq!(off.body["enabled"], false);
    let again = app
        .post("/api/v1/agents/travel/toggle", json!({"enabled": false}))
        .await;
    assert_eq!(again.body["revision"], off.body["revision"], "idempotent");

    advance_agent(&app, "travel", "approved_dev").await;
    let blocked = app
        .call(Method::DELETE, "/api/v1/agents/travel", None)
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    assert_eq!(blocked.code(), "agent_in_use");
    register_agent(&app, agent_body("draft-one")).await;
    let gone = app
        .call(Method::DELETE, "/api/v1/agents/draft-one", None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/agents/draft-one").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn the_lifecycle_and_permissions_are_the_servers_ones(backend: Backend) {
    let app = spawn(backend).await;
    register_agent(&app, agent_body("travel")).await;
    let skip = app
        .post(
            "/api/v1/agents/travel/lifecycle",
            json!({"to": "approved_prod", "reason": "hurry"}),
        )
        .await;
    assert_eq!(skip.status, StatusCode::CONFLICT);
    assert_eq!(skip.code(), "invalid_transition");

    let reader = app.key_with(&["servers:read"]).await;
    let submitter = app.key_with(&["servers:read", "lifecycle:submit"]).await;
    let as_key = |key: String, method: Method, path: &'static str, body: Option<Value>| {
        let app = &app;
        async move { app.call_as(Some(&key), method, path, body, &[]).await }
    };
    let r = as_key(
        reader.clone(),
        Method::POST,
        "/api/v1/agents",
        Some(agent_body("x1")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = as_key(reader.clone(), Method::GET, "/api/v1/agents/travel", None).await;
    assert_eq!(r.status, StatusCode::OK);
    for (path, body) in [
        ("/api/v1/agents/travel/toggle", json!({"enabled": false})),
        ("/api/v1/agents/travel/health", json!({})),
    ] {
        let r = app
            .call_as(Some(&reader), Method::POST, path, Some(body), &[])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {:?}", r.body);
    }
    let r = as_key(
        reader.clone(),
        Method::DELETE,
        "/api/v1/agents/travel",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let submit = json!({"to": "submitted", "reason": "ready"});
    let r = as_key(
        reader,
        Method::POST,
        "/api/v1/agents/travel/lifecycle",
        Some(submit.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = as_key(
        submitter.clone(),
        Method::POST,
        "/api/v1/agents/travel/lifecycle",
        Some(submit),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["next_lifecycle_states"],
        json!(["draft", "security_review"])
    );
    let review = json!({"to": "security_review", "reason": "go"});
    let r = as_key(
        submitter,
        Method::POST,
        "/api/v1/agents/travel/lifecycle",
        Some(review),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "review needs lifecycle:review"
    );

    let none = app.key_with(&["audit:read"]).await;
    let r = app
        .call_as(Some(&none), Method::GET, "/api/v1/agents", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn a_health_check_flags_a_served_card_that_changed_after_approval(backend: Backend) {
    let app = spawn(backend).await;
    let server = CardServer::start(card("Remote planner")).await;
    register_agent(
        &app,
        json!({"path": "remote", "card_url": server.card_url(), "governance": {"owner_team": "t"}}),
    )
    .await;
    advance_agent(&app, "remote", "approved_dev").await;
    let checked = app.post("/api/v1/agents/remote/health", json!({})).await;
    assert_eq!(checked.status, StatusCode::OK, "{:?}", checked.body);
    assert_eq!(checked.body["health"]["status"], "healthy");
    assert!(checked.body["health"]["checked_at"].is_string());
    assert_eq!(checked.body["card_status"], "approved");
    let revision = checked.body["revision"].clone();

    // The agent starts serving another card: flagged, audited once, revision unchanged.
    server.card.lock().unwrap()["description"] = json!("Now also moves money");
    let changed = app.post("/api/v1/agents/remote/health", json!({})).await;
    assert_eq!(changed.body["health"]["status"], "healthy");
    assert_eq!(changed.body["card_status"], "changed_needs_review");
    assert_eq!(
        changed.body["revision"], revision,
        "a check is not a change"
    );
    assert_eq!(
        app.get("/api/v1/agents/remote").await.body["card_status"],
        "changed_needs_review",
        "the flag is stored"
    );
    app.post("/api/v1/agents/remote/health", json!({})).await;
    let flagged = app.audit("action=agent.card_changed").await;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0]["resource_id"], "remote");

    // The owner takes the new card; the reviewer approves exactly the hash reviewed.
    let served = server.card.lock().unwrap().clone();
    let updated = app
        .call(
            Method::PATCH,
            "/api/v1/agents/remote",
            Some(json!({"card": served})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    let hash = updated.body["card_hash"].as_str().unwrap().to_owned();
    let wrong = app
        .post(
            "/api/v1/agents/remote/card/approve",
            json!({"card_hash": "0".repeat(64)}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    assert_eq!(wrong.field(), "card_hash");
    let owner_only = app.key_with(&["servers:read", "servers:update"]).await;
    let r = app
        .call_as(
            Some(&owner_only),
            Method::POST,
            "/api/v1/agents/remote/card/approve",
            Some(json!({"card_hash": hash})),
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "owners cannot approve their own change"
    );
    let approved = app
        .post(
            "/api/v1/agents/remote/card/approve",
            json!({"card_hash": hash}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["card_status"], "approved");

    // A dead card URL: unhealthy with the reason; the last served hash is kept.
    let port = dead_port().await;
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/agents/remote",
            Some(
                json!({"card_url": format!("http://127.0.0.1:{port}/.well-known/agent-card.json")}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let down = app.post("/api/v1/agents/remote/health", json!({})).await;
    assert_eq!(down.body["health"]["status"], "unhealthy");
    assert_eq!(down.body["health"]["reason"], "connection_refused");
    assert_eq!(down.body["card_status"], "approved");
}

async fn every_agent_write_is_audited(backend: Backend) {
    let app = spawn(backend).await;
    register_agent(&app, agent_body("travel")).await;
    app.call(
        Method::PATCH,
        "/api/v1/agents/travel",
        Some(json!({"tags": ["air"]})),
    )
    .await;
    app.post("/api/v1/agents/travel/toggle", json!({"enabled": false}))
        .await;
    advance_agent(&app, "travel", "submitted").await;
    app.call(Method::DELETE, "/api/v1/agents/travel", None)
        .await;
    let records = app.audit("resource_type=agent").await;
    let actions: Vec<&str> = records
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "agent.create",
            "agent.update",
            "agent.toggle",
            "agent.lifecycle",
            "agent.delete"
        ]
    );
    let revisions: Vec<(Value, Value)> = records
        .iter()
        .rev()
        .map(|r| (r["revision_before"].clone(), r["revision_after"].clone()))
        .collect();
    assert_eq!(
        revisions,
        [
            (Value::Null, json!(1)),
            (json!(1), json!(2)),
            (json!(2), json!(3)),
            (json!(3), json!(4)),
            (json!(4), Value::Null),
        ]
    );
    assert_eq!(records[3]["details"]["changed"], json!(["tags"]));
}

async fn search_finds_agents_by_their_skills(backend: Backend) {
    let app = spawn(backend).await;
    register_agent(&app, agent_body("travel")).await;
    let mut other = agent_body("ledger");
    other["card"] = json!({
        "name": "Ledger clerk", "description": "Reconciles accounts", "url": "http://127.0.0.1:9/a2a",
        "version": "1", "skills": [{"id": "rec", "name": "Reconcile", "description": "Matches invoices to payments"}]
    });
    register_agent(&app, other).await;
    let search = |query: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post(
                    "/api/v1/search",
                    json!({"query": query, "kinds": ["agent"]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["kind"].as_str().unwrap().to_owned(),
                        h["server"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        search("invoices payments").await[0],
        ("agent".to_owned(), "ledger".to_owned())
    );
    assert_eq!(search("book a flight").await[0].1, "travel");
    app.call(Method::DELETE, "/api/v1/agents/ledger", None)
        .await;
    assert!(
        search("invoices payments")
            .await
            .iter()
            .all(|(_, p)| p != "ledger")
    );
    // Scoped or missing read permission: no agents in answers.
    let none = app.key_with(&["audit:read"]).await;
    let r = app
        .call_as(
            Some(&none),
            Method::POST,
            "/api/v1/search",
            Some(json!({"query": "flight"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
