//! `/api/v1/gateway`: the routing snapshot gateways long-poll and the audit events they
//! report, on both backends.

use std::time::{Duration, Instant};

use mcpgw_core::domain::UpstreamAuth;
use mcpgw_core::gateway_sync::GatewaySnapshot;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, server_body, spawn, spawn_with};

both_backends!(
    the_snapshot_holds_routable_servers_with_sealed_credentials_and_its_version_as_etag,
    an_unchanged_snapshot_answers_304_when_the_wait_ends,
    a_waiting_poll_returns_as_soon_as_a_write_changes_the_snapshot,
    stopping_the_registry_ends_waiting_polls,
    the_gateway_endpoints_need_gateway_sync,
    reported_events_are_stored_once_and_listed_in_the_audit_log,
    bad_audit_batches_are_refused_naming_the_field_and_store_nothing,
    a_stored_event_keeps_every_field_and_their_order,
    a_patch_sets_gateway_settings_which_reach_the_snapshot,
);

const SNAPSHOT: &str = "/api/v1/gateway/snapshot";
const AUDIT: &str = "/api/v1/gateway/audit";

/// A snapshot request with an optional `If-None-Match`.
async fn poll(app: &TestApp, key: &str, query: &str, known: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = known.map(|k| ("if-none-match", k)).into_iter().collect();
    app.call_as(
        Some(key),
        Method::GET,
        &format!("{SNAPSHOT}{query}"),
        None,
        &headers,
    )
    .await
}

fn etag(r: &Reply) -> String {
    r.headers
        .get("etag")
        .expect("an ETag header")
        .to_str()
        .unwrap()
        .to_owned()
}

fn paths(snapshot: &Value) -> Vec<String> {
    snapshot["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect()
}

/// One event as a gateway reports it.
fn event(server: &str, method: &str, decision: &str) -> Value {
    json!({
        "id": uuid::Uuid::now_v7(),
        "at": mcpgw_core::time::Timestamp::now(),
        "request_id": format!("req-{}", uuid::Uuid::new_v4().simple()),
        "gateway": "gw-test-1",
        "server": server,
        "method": method,
        "tool": if method == "tools/call" { json!("forecast") } else { Value::Null },
        "subject": "alice-sub",
        "user": "alice",
        "client_id": "agent-7",
        "issuer": "https://idp.example.com",
        "decision": decision,
        "reason": if decision == "allowed" { "matched" } else { "no_matching_rule" },
        "matched_rule": if decision == "allowed" { json!("scope \"ops\" server_access[0]") } else { Value::Null },
        "status": if decision == "allowed" { "ok" } else { "denied" },
        "latency_ms": 12.5,
    })
}

async fn the_snapshot_holds_routable_servers_with_sealed_credentials_and_its_version_as_etag(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let mut body = server_body("alpha");
    body["upstream_auth"] = json!({"type": "bearer", "token": "plain-upstream-token-7731"});
    body["custom_headers"] = json!({"X-Tenant": "plain-header-value-5512"});
    app.register(body).await;
    for p in ["draft-one", "off", "prod-only"] {
        app.register(server_body(p)).await;
    }
    app.advance("alpha", "approved_dev").await;
    app.advance("off", "approved_dev").await;
    app.advance("prod-only", "approved_prod").await;
    let r = app
        .post("/api/v1/servers/off/toggle", json!({"enabled": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = poll(&app, &gw, "", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(
        etag(&r),
        format!("\"{}\"", r.body["version"].as_str().unwrap())
    );
    assert_eq!(r.body["stage"], "non_production");
    // Disabled servers and drafts are not routed.
    assert_eq!(paths(&r.body), ["alpha", "prod-only"]);
    let wire = r.body.to_string();
    for plain in ["plain-upstream-token-7731", "plain-header-value-5512"] {
        assert!(
            !wire.contains(plain),
            "a plain credential on the wire: {wire}"
        );
    }
    // The sealed values open with the registry's keyring (what gateways hold), bound to the
    // server they belong to.
    let snapshot: GatewaySnapshot = serde_json::from_value(r.body.clone()).unwrap();
    assert!(snapshot.is_consistent());
    let alpha = &snapshot.servers[0];
    let UpstreamAuth::Bearer { token } = &alpha.upstream_auth else {
        panic!("{:?}", alpha.upstream_auth)
    };
    let keyring = &app.running.state.registry.keyring;
    let opened = keyring
        .open(&alpha.secret_context("upstream_auth.token"), token)
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened),
        "plain-upstream-token-7731"
    );
    assert!(alpha.custom_headers.contains_key("x-tenant"));

    // Same content, same version.
    let again = poll(&app, &gw, "", None).await;
    assert_eq!(etag(&again), etag(&r));
    assert_eq!(again.body, r.body, "a cached snapshot is served unchanged");
}

async fn an_unchanged_snapshot_answers_304_when_the_wait_ends(backend: Backend) {
    // No health checks: the first check of `alpha` (nothing listens at its URL) would change
    // the snapshot during the wait, which is right, but not what this test is about.
    let app = spawn_with(backend, "[health]\nenabled = false").await;
    let gw = app.key_with(&["gateway:sync"]).await;
    app.register(server_body("alpha")).await;
    app.advance("alpha", "approved_dev").await;
    let first = poll(&app, &gw, "", None).await;
    let tag = etag(&first);

    let started = Instant::now();
    let r = poll(&app, &gw, "?wait=1", Some(&tag)).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{:?}", r.body);
    assert_eq!(r.body, Value::Null, "a 304 has no body");
    assert_eq!(etag(&r), tag);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // Without a wait the answer is immediate; the tag may come without quotes or weak.
    let bare = tag.trim_matches('"').to_owned();
    for known in [
        bare.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
    ] {
        let started = Instant::now();
        let r = poll(&app, &gw, "", Some(&known)).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{known}");
        assert!(started.elapsed() < Duration::from_millis(900));
    }
    // Another version gets the snapshot at once, whatever the wait.
    let started = Instant::now();
    let r = poll(&app, &gw, "?wait=30", Some("\"0123456789abcdef01234567\"")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"].as_str(), Some(bare.as_str()));
    assert!(started.elapsed() < Duration::from_secs(2));

    // wait is 0–60 whole seconds.
    for bad in ["61", "-1", "1.5", "soon"] {
        let r = poll(&app, &gw, &format!("?wait={bad}"), None).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::BAD_REQUEST, "invalid_query", "wait"),
            "{bad}"
        );
    }
    let r = poll(&app, &gw, "?since=1", None).await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, "since"));
}

async fn a_waiting_poll_returns_as_soon_as_a_write_changes_the_snapshot(backend: Backend) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let first = poll(&app, &gw, "", None).await;
    assert_eq!(paths(&first.body), Vec::<String>::new());
    let tag = etag(&first);

    // Many gateways wait at once; one write answers them all with one shared build.
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let client = app.client.clone();
            let url = format!("{}{SNAPSHOT}?wait=20", app.base);
            let (gw, tag) = (gw.clone(), tag.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let r = client
                    .get(url)
                    .bearer_auth(gw)
                    .header("if-none-match", tag)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                (status, body, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Registering a draft changes no route; approving it for dev does.
    app.register(server_body("weather")).await;
    app.advance("weather", "approved_dev").await;
    let mut generated = std::collections::BTreeSet::new();
    for w in waiters {
        let (status, body, took) = w.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(paths(&body), ["weather"]);
        assert_ne!(format!("\"{}\"", body["version"].as_str().unwrap()), tag);
        assert!(took < Duration::from_secs(5), "{took:?}");
        generated.insert(body["generated_at"].as_str().unwrap().to_owned());
    }
    assert_eq!(generated.len(), 1, "every poll got the same build");

    // A policy change wakes a poll too.
    let tag = etag(&poll(&app, &gw, "", None).await);
    let waiter = {
        let client = app.client.clone();
        let url = format!("{}{SNAPSHOT}?wait=20", app.base);
        let (gw, tag) = (gw.clone(), tag.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tag = tag;
            loop {
                let r = client
                    .get(&url)
                    .bearer_auth(&gw)
                    .header("if-none-match", &tag)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body = r.json::<Value>().await.unwrap_or(Value::Null);
                // Another change (the scheduler's health check of the unreachable server) may
                // wake the poll first: that answer is older than the policy write; wait again.
                if status == StatusCode::OK && body["policy"]["version"] == 0 {
                    tag = format!("\"{}\"", body["version"].as_str().unwrap());
                    continue;
                }
                return (status, body, started.elapsed());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let doc = json!({"name": "ops", "group_mappings": ["ops"],
        "server_access": [{"server": "weather", "methods": ["tools/list"]}]});
    let r = app.call(Method::PUT, "/api/v1/scopes/ops", Some(doc)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (status, body, took) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["policy"]["version"], 1);
    assert_eq!(body["policy"]["documents"][0]["name"], "ops");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

async fn stopping_the_registry_ends_waiting_polls(backend: Backend) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let tag = etag(&poll(&app, &gw, "", None).await);
    let client = app.client.clone();
    let url = format!("{}{SNAPSHOT}?wait=60", app.base);
    let waiter = tokio::spawn(async move {
        client
            .get(url)
            .bearer_auth(gw)
            .header("if-none-match", tag)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    app.running.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(waiter.await.unwrap().unwrap(), StatusCode::NOT_MODIFIED);
}

async fn the_gateway_endpoints_need_gateway_sync(backend: Backend) {
    let app = spawn(backend).await;
    let reader = app.key_with(&["servers:read", "audit:read"]).await;
    let batch = json!({"events": [event("weather", "tools/call", "allowed")]});
    for key in [None, Some(reader.as_str())] {
        let r = app.call_as(key, Method::GET, SNAPSHOT, None, &[]).await;
        let s = app
            .call_as(key, Method::POST, AUDIT, Some(batch.clone()), &[])
            .await;
        let expected = match key {
            None => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Some(_) => (StatusCode::FORBIDDEN, "forbidden"),
        };
        assert_eq!((r.status, r.code()), expected, "{:?}", r.body);
        assert_eq!((s.status, s.code()), expected, "{:?}", s.body);
        if key.is_some() {
            assert!(r.body["detail"].as_str().unwrap().contains("gateway:sync"));
        }
    }
    assert!(app.audit("action=mcp.*").await.is_empty());
    // The admin key holds every permission, gateway:sync included.
    assert_eq!(app.get(SNAPSHOT).await.status, StatusCode::OK);
}

async fn reported_events_are_stored_once_and_listed_in_the_audit_log(backend: Backend) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let gw_id = gw
        .trim_start_matches("mcpgw_")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    app.register(server_body("weather")).await;
    let mut anonymous = event("weather", "tools/list", "allowed");
    anonymous.as_object_mut().unwrap().remove("user");
    // Refusals a gateway coalesced: one event standing for 999.
    let mut coalesced = event("finance", "tools/call", "denied");
    coalesced["count"] = json!(999);
    let events = vec![
        event("weather", "tools/call", "allowed"),
        anonymous,
        coalesced,
    ];
    let batch = json!({"events": events});
    let send = |batch: Value| app.call_as(Some(&gw), Method::POST, AUDIT, Some(batch), &[]);
    let r = send(batch.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"accepted": 3, "duplicates": 0}));

    let listed = app.audit("action=mcp.*").await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let by_id = |id: &Value| {
        listed
            .iter()
            .find(|r| &r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    let call = by_id(&events[0]["id"]);
    assert_eq!(call["action"], "mcp.tool_call");
    assert_eq!(call["actor"], "alice-sub");
    assert_eq!(call["actor_kind"], "user");
    assert_eq!(call["resource_type"], "server");
    assert_eq!(call["resource_id"], "weather");
    assert_eq!(call["request_id"], events[0]["request_id"]);
    assert_eq!(call["at"], events[0]["at"]);
    let details = &call["details"];
    assert_eq!(details["tool"], "forecast");
    assert_eq!(details["method"], "tools/call");
    assert_eq!(details["gateway"], "gw-test-1");
    assert_eq!(details["client_id"], "agent-7");
    assert_eq!(details["issuer"], "https://idp.example.com");
    assert_eq!(details["decision"], "allowed");
    assert_eq!(details["matched_rule"], "scope \"ops\" server_access[0]");
    assert_eq!(details["latency_ms"], 12.5);
    assert_eq!(details["reported_by"], format!("api_key:{gw_id}"));
    assert!(details.get("count").is_none(), "a count of 1 is left out");
    let listing = by_id(&events[1]["id"]);
    assert_eq!(
        (&listing["action"], &listing["actor_kind"]),
        (&json!("mcp.request"), &json!("service"))
    );
    assert_eq!(by_id(&events[2]["id"])["action"], "mcp.denied");
    assert_eq!(by_id(&events[2]["id"])["details"]["count"], 999);

    // The audit filters find them.
    let denied = app.audit("action=mcp.denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["resource_id"], "finance");
    let weather = app.audit("resource_type=server&resource_id=weather").await;
    let actions: std::collections::BTreeSet<&str> = weather
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(weather.len(), 3);
    assert_eq!(
        actions.into_iter().collect::<Vec<_>>(),
        ["mcp.request", "mcp.tool_call", "server.create"]
    );
    assert_eq!(app.audit("actor=alice-sub").await.len(), 3);
    assert_eq!(app.audit("action=server.*").await.len(), 1);

    // Sent again (the answer was lost): nothing is stored twice.
    let r = send(batch).await;
    assert_eq!(r.body, json!({"accepted": 0, "duplicates": 3}));
    assert_eq!(app.audit("action=mcp.*").await.len(), 3);
    // A batch mixing old and new events stores the new ones; a repeated id counts once.
    let fresh = event("weather", "ping", "allowed");
    let r = send(json!({"events": [events[0], fresh, fresh]})).await;
    assert_eq!(r.body, json!({"accepted": 1, "duplicates": 2}));
    assert_eq!(app.audit("action=mcp.*").await.len(), 4);
    let r = send(json!({"events": []})).await;
    assert_eq!(r.body, json!({"accepted": 0, "duplicates": 0}));
}

/// The record a gateway event becomes, byte for byte as the audit log lists it: the fields,
/// their values and their order (the one the stored documents have always had), for an event
/// with every optional field and for one with none.
async fn a_stored_event_keeps_every_field_and_their_order(backend: Backend) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let gw_id = gw.trim_start_matches("mcpgw_").split('.').next().unwrap();
    let mut full = event("weather", "tools/call", "allowed");
    full["arguments"] = json!({"city": "Oslo", "days": 3, "units": ["C", "F"]});
    full["count"] = json!(3);
    let mut bare = event("finance", "tools/list", "allowed");
    for key in ["tool", "user", "client_id", "matched_rule"] {
        bare.as_object_mut().unwrap().remove(key);
    }
    bare["request_id"] = json!("");
    bare["latency_ms"] = json!(7.0);
    let r = app
        .call_as(
            Some(&gw),
            Method::POST,
            AUDIT,
            Some(json!({"events": [full, bare]})),
            &[],
        )
        .await;
    assert_eq!(r.body, json!({"accepted": 2, "duplicates": 0}));

    let listed = app.audit("action=mcp.*").await;
    let text_of = |id: &Value| {
        let record = listed.iter().find(|r| &r["id"] == id).expect("listed");
        serde_json::to_string(record).unwrap()
    };
    let reported_by = format!("api_key:{gw_id}");
    let expected_full = json!({
        "id": full["id"], "at": full["at"], "request_id": full["request_id"],
        "actor": "alice-sub", "actor_kind": "user", "action": "mcp.tool_call",
        "resource_type": "server", "resource_id": "weather",
        "details": {
            "count": 3, "arguments": {"city": "Oslo", "days": 3, "units": ["C", "F"]},
            "latency_ms": 12.5, "gateway": "gw-test-1",
            "matched_rule": "scope \"ops\" server_access[0]", "method": "tools/call",
            "tool": "forecast", "status": "ok", "user": "alice", "client_id": "agent-7",
            "issuer": "https://idp.example.com", "decision": "allowed", "reason": "matched",
            "reported_by": reported_by,
        },
    });
    assert_eq!(text_of(&full["id"]), expected_full.to_string());
    let expected_bare = json!({
        "id": bare["id"], "at": bare["at"],
        "actor": "alice-sub", "actor_kind": "service", "action": "mcp.request",
        "resource_type": "server", "resource_id": "finance",
        "details": {
            "latency_ms": 7.0, "status": "ok", "reason": "matched", "gateway": "gw-test-1",
            "issuer": "https://idp.example.com", "method": "tools/list", "decision": "allowed",
            "reported_by": reported_by,
        },
    });
    assert_eq!(text_of(&bare["id"]), expected_bare.to_string());
}

async fn bad_audit_batches_are_refused_naming_the_field_and_store_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let gw = app.key_with(&["gateway:sync"]).await;
    let send = |body: Value| app.call_as(Some(&gw), Method::POST, AUDIT, Some(body), &[]);
    let one = || event("weather", "tools/call", "allowed");

    let too_many: Vec<Value> = (0..1001).map(|_| one()).collect();
    let r = send(json!({"events": too_many})).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "events"
        ),
        "{:?}",
        r.body
    );
    assert!(r.body["detail"].as_str().unwrap().contains("1000"));

    let mut unknown = one();
    unknown["colour"] = json!("red");
    let mut v4 = one();
    v4["id"] = json!(uuid::Uuid::new_v4());
    let mut decision = one();
    decision["decision"] = json!("maybe");
    let mut long = one();
    long["tool"] = json!("t".repeat(2000));
    let mut none = one();
    none["count"] = json!(0);
    let cases = [
        (json!({"events": [one()], "extra": 1}), "extra"),
        (json!({"events": [one(), unknown]}), "events[1].colour"),
        (json!({"events": [v4]}), "events[0].id"),
        (json!({"events": [decision]}), "events[0].decision"),
        (json!({"events": [long]}), "events[0].tool"),
        (json!({"events": [one(), none]}), "events[1].count"),
        (json!({"events": {"a": 1}}), "events"),
        (json!({}), "events"),
    ];
    for (body, field) in cases {
        let r = send(body).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", field),
            "{:?}",
            r.body
        );
    }
    let r = app
        .client
        .post(format!("{}{AUDIT}", app.base))
        .bearer_auth(&gw)
        .header("content-type", "application/json")
        .body("{\"events\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    let r = app
        .client
        .post(format!("{}{AUDIT}", app.base))
        .bearer_auth(&gw)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"events\": [], \"pad\": \"{}\"}}",
            "x".repeat(4 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.audit("action=mcp.*").await.is_empty(), "nothing stored");
    // 1000 is accepted (the body is over the general 1 MiB limit, under the batch limit).
    let mut full: Vec<Value> = (0..1000).map(|_| one()).collect();
    for e in &mut full {
        e["arguments"] = json!({"padding": "x".repeat(1200)});
    }
    let r = send(json!({"events": full})).await;
    assert_eq!(r.body, json!({"accepted": 1000, "duplicates": 0}));
}

async fn a_patch_sets_gateway_settings_which_reach_the_snapshot(backend: Backend) {
    let app = spawn(backend).await;
    app.register(server_body("weather")).await;
    app.advance("weather", "approved_dev").await;
    let created = app.get("/api/v1/servers/weather").await;
    assert_eq!(
        created.body["gateway"],
        json!({"read_only": false, "log_arguments": false})
    );
    let patch = |body: Value| {
        app.call_as(
            Some(&app.key),
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(body),
            &[],
        )
    };
    let r = patch(json!({"gateway": {"read_only": true}})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["gateway"]["read_only"], true);
    let got = app.get("/api/v1/servers/weather").await;
    assert_eq!(
        got.body["gateway"],
        json!({"read_only": true, "log_arguments": false})
    );
    let snap = app.get(SNAPSHOT).await;
    assert_eq!(snap.body["servers"][0]["gateway"]["read_only"], true);

    // Merged, not replaced: other settings are kept; null resets one to its default.
    let r = patch(json!({"gateway": {"calls_per_minute": 30,
        "tool_calls_per_minute": {"forecast": 5}}}))
    .await;
    assert_eq!(
        r.body["gateway"],
        json!({"read_only": true, "log_arguments": false, "calls_per_minute": 30,
               "tool_calls_per_minute": {"forecast": 5}})
    );
    let r = patch(json!({"gateway": {"read_only": null, "calls_per_minute": null}})).await;
    assert_eq!(
        r.body["gateway"],
        json!({"read_only": false, "log_arguments": false, "tool_calls_per_minute": {"forecast": 5}})
    );
    let snap = app.get(SNAPSHOT).await;
    assert_eq!(
        snap.body["servers"][0]["gateway"],
        json!({"read_only": false, "log_arguments": false, "tool_calls_per_minute": {"forecast": 5}})
    );

    // Limits name the field; unknown settings are refused.
    for (body, field) in [
        (
            json!({"gateway": {"calls_per_minute": 0}}),
            "gateway.calls_per_minute",
        ),
        (json!({"gateway": {"readonly": true}}), "gateway.readonly"),
    ] {
        let r = patch(body).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", field),
            "{:?}",
            r.body
        );
    }
    let updates = app.audit("action=server.update").await;
    assert_eq!(updates.len(), 3);
    assert!(
        updates
            .iter()
            .all(|u| u["details"]["changed"] == json!(["gateway"]))
    );
}

/// Two replicas on one MongoDB: a poll waiting on one sees a write made through the other
/// within about twice `store.catalog_cache_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_on_one_replica_sees_a_write_through_another() {
    let a = spawn_with(Backend::Mongo, "[store]\ncatalog_cache_ms = 300").await;
    let mut config_b = a.running.state.config.as_ref().clone();
    config_b.listen = "127.0.0.1:0".parse().unwrap();
    config_b.metrics_listen = "127.0.0.1:0".parse().unwrap();
    let b = registry::app::start(config_b).await.unwrap();
    let url_b = format!("http://{}{SNAPSHOT}", b.addr);
    let first = a
        .client
        .get(&url_b)
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    let waiter = {
        let (client, key, tag) = (a.client.clone(), a.key.clone(), tag.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client
                .get(format!("{url_b}?wait=20"))
                .bearer_auth(key)
                .header("if-none-match", tag)
                .send()
                .await
                .unwrap();
            (
                r.status(),
                r.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.register(server_body("weather")).await;
    a.advance("weather", "approved_dev").await;
    let (status, body, took) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paths(&body), ["weather"]);
    assert!(took < Duration::from_secs(5), "{took:?}");
    b.stop().await;
}
