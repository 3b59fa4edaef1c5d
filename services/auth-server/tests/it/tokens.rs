//! Token vending: claims, limits, ledger, revocation, keys and rotation.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_core::time::Timestamp;
use mcpgw_core::token::{IssuerConfig, TokenError, TokenValidator, ValidatorSettings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Browser, TestApp, spawn, spawn_with};

both_backends!(
    a_vended_token_validates_with_the_core_validator_configured_with_the_auth_server_as_issuer,
    a_token_carries_only_scopes_the_user_holds,
    the_lifetime_defaults_to_an_hour_and_cannot_exceed_the_maximum,
    bad_mint_requests_name_the_field_and_change_nothing,
    the_mint_limit_answers_429_with_retry_after,
    every_mint_is_in_the_ledger_and_the_audit_log_without_the_token,
    a_revoked_token_is_listed_for_gateways,
    a_user_cannot_revoke_someone_elses_token,
    rotation_keeps_old_tokens_valid_until_they_expire,
    a_due_rotation_replaces_the_key_once,
);

fn validator(app: &TestApp) -> TokenValidator {
    let issuer: IssuerConfig = serde_json::from_value(json!({
        "issuer": app.running.public_url,
        "audiences": ["mcp-gateway"],
    }))
    .unwrap();
    TokenValidator::new(
        vec![issuer],
        ValidatorSettings {
            refresh_min_interval: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap()
}

fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut decode = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}

async fn mint_ok(b: &Browser, body: Value) -> Value {
    let r = b.mint(body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

async fn a_vended_token_validates_with_the_core_validator_configured_with_the_auth_server_as_issuer(
    backend: Backend,
) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let minted = mint_ok(
        &b,
        json!({"scopes": ["mcp-servers-unrestricted/read"], "description": "ci agent"}),
    )
    .await;
    let token = minted["access_token"].as_str().unwrap();
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(minted["expires_in"], 3600);
    let (header, claims) = parts(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], json!(app.running.public_url));
    assert_eq!(claims["aud"], "mcp-gateway");
    assert_eq!(claims["sub"], "local:admin");
    assert_eq!(claims["preferred_username"], "admin");
    assert!(
        claims.get("groups").is_none(),
        "an agent token carries only its narrowed scopes, never the user's groups"
    );
    assert_eq!(claims["scope"], "mcp-servers-unrestricted/read");
    assert_eq!(claims["jti"], minted["jti"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    // The validator knows only the issuer URL: it discovers the JWKS.
    let v = validator(&app);
    let verified = v.validate(token).await.expect("the vended token validates");
    assert_eq!(verified.subject, "local:admin");
    assert_eq!(verified.scopes, vec!["mcp-servers-unrestricted/read"]);
    assert!(verified.groups.is_empty());
    assert_eq!(verified.username.as_deref(), Some("admin"));
    assert_eq!(verified.token_id.as_deref(), minted["jti"].as_str());

    // Another audience does not accept it.
    let other: IssuerConfig = serde_json::from_value(json!({
        "issuer": app.running.public_url, "audiences": ["someone-else"],
    }))
    .unwrap();
    let v2 = TokenValidator::new(vec![other], Default::default()).unwrap();
    assert_eq!(v2.validate(token).await.unwrap_err(), TokenError::Audience);
    // A tampered token does not verify.
    let (h, p, s) = {
        let mut it = token.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let mut c = parts(token).1;
    c["scope"] = json!("mcp-registry-admin");
    let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(c.to_string()));
    assert_ne!(forged, format!("{h}.{p}.{s}"));
    assert_eq!(
        v.validate(&forged).await.unwrap_err(),
        TokenError::Signature
    );
}

async fn a_token_carries_only_scopes_the_user_holds(backend: Backend) {
    let app = spawn_with(
        backend,
        "[group_scopes]\nteam = [\"weather/read\"]\nmcpgw-admins = [\"mcp-registry-admin\"]\n",
    )
    .await;
    let alice = app.user("alice", &["team"]).await;
    let me = alice.get("/api/v1/me").await;
    assert_eq!(me.body["scopes"], json!(["weather/read"]));
    let r = alice
        .mint(json!({"scopes": ["weather/read", "mcp-registry-admin"]}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "scope_not_granted");
    assert_eq!(r.field(), "scopes[1]");
    assert!(
        app.store()
            .list_vended_tokens("local:alice", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let ok = mint_ok(&alice, json!({"scopes": ["weather/read"]})).await;
    assert_eq!(ok["scopes"], json!(["weather/read"]));
}

async fn the_lifetime_defaults_to_an_hour_and_cannot_exceed_the_maximum(backend: Backend) {
    let app = spawn_with(backend, "[tokens]\nmax_ttl_seconds = 7200\n").await;
    let b = app.admin().await;
    let scopes = json!(["mcp-registry-admin"]);
    let m = mint_ok(&b, json!({"scopes": scopes, "ttl_seconds": 600})).await;
    assert_eq!(m["expires_in"], 600);
    let (_, c) = parts(m["access_token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    let m = mint_ok(&b, json!({"scopes": scopes, "ttl_seconds": 7200})).await;
    assert_eq!(m["expires_in"], 7200);
    for ttl in [7201, 59, 0] {
        let r = b.mint(json!({"scopes": scopes, "ttl_seconds": ttl})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{ttl}");
        assert_eq!(r.field(), "ttl_seconds");
        assert!(r.body["detail"].as_str().unwrap().contains("7200"));
    }
    // The limit in the unit the console's form asks in, too, and the same limit /me states.
    let r = b.mint(json!({"scopes": scopes, "ttl_seconds": 7201})).await;
    assert_eq!(
        r.body["detail"],
        "ttl_seconds: must be between 60 and 7200 seconds, 1 to 120 minutes (got 7201 seconds)"
    );
    assert_eq!(
        b.get("/api/v1/me").await.body["token_max_ttl_seconds"],
        7200
    );
}

async fn bad_mint_requests_name_the_field_and_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let cases = [
        (
            json!({"scopes": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "scopes"),
        (
            json!({"scopes": "mcp-registry-admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            json!({"scopes": ["has space"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes[0]",
        ),
        (
            json!({"scopes": ["mcp-registry-admin", "mcp-registry-admin"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes[1]",
        ),
        (
            json!({"scopes": ["mcp-registry-admin"], "audience": "elsewhere"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "audience",
        ),
        (
            json!({"scopes": ["mcp-registry-admin"], "ttl_seconds": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl_seconds",
        ),
        (
            json!({"scopes": ["mcp-registry-admin"], "description": "x".repeat(201)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "description",
        ),
        (
            json!({"scopes": ["mcp-registry-admin"], "description": "bell\u{7}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "description",
        ),
    ];
    for (body, status, field) in cases {
        let r = b.mint(body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.field(), field, "{body}");
    }
    let csrf = b.csrf().await;
    let r = b
        .send(
            b.request(Method::POST, "/api/v1/tokens")
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body("{\"scopes\": ["),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_json");
    let r = b
        .send(
            b.request(Method::POST, "/api/v1/tokens")
                .header("x-csrf-token", &csrf)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = b
        .send(
            b.request(Method::POST, "/api/v1/tokens")
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body(format!("{{\"scopes\": [\"{}\"]}}", "a".repeat(70_000))),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    assert!(
        app.store()
            .list_vended_tokens("local:admin", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let r = b.get("/api/v1/tokens?limit=0").await;
    assert_eq!(r.code(), "invalid_query");
    let r = b
        .api(Method::DELETE, "/api/v1/tokens/not-a-uuid", None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field(), "jti");
}

async fn the_mint_limit_answers_429_with_retry_after(backend: Backend) {
    let app = spawn_with(backend, "[tokens]\nmints_per_hour = 2\n").await;
    let b = app.admin().await;
    let body = json!({"scopes": ["mcp-registry-admin"]});
    mint_ok(&b, body.clone()).await;
    mint_ok(&b, body.clone()).await;
    let r = b.mint(body.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert_eq!(
        app.store()
            .list_vended_tokens("local:admin", 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // The limit is per user.
    let alice = app.user("alice", &["mcpgw-admins"]).await;
    mint_ok(&alice, body).await;
}

async fn every_mint_is_in_the_ledger_and_the_audit_log_without_the_token(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let m = mint_ok(
        &b,
        json!({"scopes": ["mcp-registry-admin"], "description": "nightly sync", "ttl_seconds": 900}),
    )
    .await;
    let token = m["access_token"].as_str().unwrap();
    let list = b.get("/api/v1/tokens").await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["jti"], m["jti"]);
    assert_eq!(items[0]["description"], "nightly sync");
    assert_eq!(items[0]["scopes"], json!(["mcp-registry-admin"]));
    assert!(items[0].get("access_token").is_none());
    let audit = b.get("/api/v1/audit?action=token.mint").await;
    let entries = audit.body["items"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["resource_id"], m["jti"]);
    assert_eq!(entries[0]["details"]["ttl_seconds"], 900);
    assert!(
        !audit.text.contains(token),
        "the audit never holds the token"
    );
    assert!(!list.text.contains(token));
    // Another user sees none of them.
    let alice = app.user("alice", &["team"]).await;
    let theirs = alice.get("/api/v1/tokens").await;
    assert_eq!(theirs.body["items"], json!([]));
}

async fn a_revoked_token_is_listed_for_gateways(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let before = Timestamp::now();
    let m = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    let keep = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    let jti = m["jti"].as_str().unwrap();
    // A consumer (registry, gateway) validating with core's validator and the revocation list.
    let issuer: IssuerConfig = serde_json::from_value(json!({
        "issuer": app.running.public_url,
        "audiences": ["mcp-gateway"],
        "revocations_url": format!("{}/api/v1/revocations", app.running.public_url),
    }))
    .unwrap();
    let consumer = TokenValidator::new(
        vec![issuer],
        ValidatorSettings {
            revocation_refresh: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    let token = m["access_token"].as_str().unwrap();
    consumer
        .validate(token)
        .await
        .expect("valid before the revocation");
    let r = b
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        consumer.validate(token).await,
        Err(mcpgw_core::token::TokenError::Revoked),
        "the consumer honours the revocation"
    );
    consumer
        .validate(keep["access_token"].as_str().unwrap())
        .await
        .expect("other tokens stay valid");
    let r = b
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "token_not_found");
    // Public, no session needed.
    let gateway = Browser::new(&app.base);
    let r = gateway.get("/api/v1/revocations").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["jti"], m["jti"]);
    assert!(items.iter().all(|i| i["jti"] != keep["jti"]));
    let as_of = r.body["as_of"].as_str().unwrap().to_owned();
    let r = gateway
        .get(&format!(
            "/api/v1/revocations?since={}",
            urlencode(&before.to_string())
        ))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = gateway
        .get(&format!("/api/v1/revocations?since={}", urlencode(&as_of)))
        .await;
    assert_eq!(r.body["items"], json!([]));
    let r = gateway.get("/api/v1/revocations?since=yesterday").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), "since");
    let list = b.get("/api/v1/tokens").await;
    let revoked: Vec<_> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t.get("revoked_at").is_some())
        .collect();
    assert_eq!(revoked.len(), 1);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn a_user_cannot_revoke_someone_elses_token(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin().await;
    let m = mint_ok(&admin, json!({"scopes": ["mcp-registry-admin"]})).await;
    let alice = app.user("alice", &["team"]).await;
    let jti = m["jti"].as_str().unwrap();
    let r = alice
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "looks like no token at all"
    );
    let t = app.store().get_vended_token(jti).await.unwrap().unwrap();
    assert!(t.revoked_at.is_none());
    // An administrator may revoke anyone's token.
    let theirs = app.user("bob", &["mcpgw-admins"]).await;
    let bt = mint_ok(&theirs, json!({"scopes": ["mcp-registry-admin"]})).await;
    let r = admin
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", bt["jti"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn rotation_keeps_old_tokens_valid_until_they_expire(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let v = validator(&app);
    let old = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    let old_token = old["access_token"].as_str().unwrap().to_owned();
    v.validate(&old_token).await.unwrap();
    let old_kid = parts(&old_token).0["kid"].as_str().unwrap().to_owned();

    let r = b.api(Method::POST, "/api/v1/keys/rotate", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_kid = r.body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(r.body["generation"], 2);

    let jwks = Browser::new(&app.base).get("/.well-known/jwks.json").await;
    assert_eq!(jwks.header("cache-control").as_deref(), Some("no-cache"));
    let kids: Vec<_> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, vec![new_kid.clone(), old_kid.clone()]);
    for k in jwks.body["keys"].as_array().unwrap() {
        assert!(k.get("d").is_none(), "no private part is published");
        assert_eq!(k["alg"], "ES256");
    }

    let new = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    let new_token = new["access_token"].as_str().unwrap();
    assert_eq!(parts(new_token).0["kid"], json!(new_kid));
    v.validate(new_token).await.expect("the new key is fetched");
    v.validate(&old_token)
        .await
        .expect("the old token still validates");

    // The old key stays published until every token it signed has expired.
    let published = app
        .store()
        .published_signing_keys(Timestamp::now())
        .await
        .unwrap();
    let retiring = published.iter().find(|k| k.kid == old_kid).unwrap();
    let until = retiring.retire_after.unwrap();
    let max_ttl = app.running.state.config.tokens.max_ttl_seconds as i64;
    assert!(
        (until.as_datetime() - Timestamp::now().as_datetime()).num_seconds() >= max_ttl,
        "retires after the longest token lifetime"
    );
    let audit = b.get("/api/v1/audit?action=signing_key.rotate").await;
    assert_eq!(audit.body["items"][0]["actor"], "local:admin");
}

async fn a_due_rotation_replaces_the_key_once(backend: Backend) {
    let app = spawn(backend).await;
    let keys = &app.running.state.keys;
    let period = Duration::from_secs(30 * 86_400);
    assert_eq!(
        keys.rotate_if_due(period, Timestamp::now()).await.unwrap(),
        None,
        "a new key is not due"
    );
    let later =
        Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(31));
    let rotated = keys.rotate_if_due(period, later).await.unwrap();
    assert!(rotated.is_some());
    assert_eq!(
        keys.rotate_if_due(period, Timestamp::now()).await.unwrap(),
        None,
        "the fresh key is not due again"
    );
    let jwks = Browser::new(&app.base).get("/.well-known/jwks.json").await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2);
    let b = app.admin().await;
    let m = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    assert_eq!(
        parts(m["access_token"].as_str().unwrap()).0["kid"],
        json!(rotated.unwrap())
    );
}

/// End to end with the real registry: it accepts a vended token (its scope names a scope
/// document), and refuses it once the token is revoked here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_accepts_a_vended_token_and_honours_its_revocation() {
    let app = spawn(Backend::Sqlite).await;
    let b = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = &app.running.public_url;
    let config = registry::config::RegistryConfig::from_toml_layers(&[&format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [auth]\n[[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"mcp-gateway\"]\n\
         revocations_url = \"{issuer}/api/v1/revocations\"\n",
        dir.path().display()
    )])
    .unwrap();
    let reg = registry::app::start(config).await.unwrap();
    let admin_key = reg.bootstrap_key.clone().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}", reg.addr);
    let scope = json!({"name": "mcp-registry-admin", "ui_permissions": {"list_service": ["all"]}});
    let r = http
        .put(format!("{base}/api/v1/scopes/mcp-registry-admin"))
        .bearer_auth(&admin_key)
        .json(&scope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let minted = mint_ok(&b, json!({"scopes": ["mcp-registry-admin"]})).await;
    let token = minted["access_token"].as_str().unwrap().to_owned();
    let me = |t: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = me(token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["permissions"], json!(["servers:read"]));
    let jti = minted["jti"].as_str().unwrap();
    let r = b
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // The registry fetches the revocation list at most every 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = me(token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_token");
    reg.stop().await;
}
