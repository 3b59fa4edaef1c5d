//! Tokens from real issuers at the gateway: Keycloak (on PostgreSQL, started by
//! `scripts/test.sh`) with client credentials, and the auth-server (in-process), whose
//! revocations the gateway honours even for tokens it has cached.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgw_test_support::keycloak::{self as fixture, FixtureRealm};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::upstream;

/// The server the tests register.
const SERVER: &str = "weather";

fn env(name: &str, start: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test`, or start it with `scripts/deps/{start}` and export its URL")
    })
}

/// The claims of a JWT, unverified (to check what the issuer put in).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `[[auth.issuers]]` for the gateway: only `issuer` is trusted (this layer replaces the
/// stack's test issuer).
fn trusting(issuer: &str, revocations: bool) -> String {
    let mut toml =
        format!("[[auth.issuers]]\nissuer = \"{issuer}\"\naudiences = [\"{AUDIENCE}\"]\n");
    if revocations {
        toml.push_str(&format!(
            "revocations_url = \"{issuer}/api/v1/revocations\"\n"
        ));
    }
    toml
}

/// A scope document (named by token scopes, mapped to no group) that may call `echo`.
fn echo_scope(name: &str) -> Value {
    json!({"name": name, "group_mappings": [],
           "server_access": [{"server": SERVER, "methods": ALL_METHODS, "tools": ["echo"]}]})
}

/// A stack trusting `gateway_toml`'s issuers, with the rmcp upstream at [`SERVER`] and the
/// scope documents `scopes`, all of them visible at the gateway.
async fn idp_stack(gateway_toml: &str, scopes: &[Value]) -> (Stack, upstream::Upstream) {
    let stack = Stack::start_with(gateway_toml).await;
    let up = upstream::start(false).await;
    stack
        .register(
            SERVER,
            json!({"transport": "streamable-http", "url": up.url()}),
            json!({}),
        )
        .await;
    for s in scopes {
        stack.put_scope(s.clone()).await;
    }
    wait_routed(&stack.gateway, SERVER, true).await;
    wait_policy(&stack).await;
    for s in scopes {
        wait_scope(&stack, s["name"].as_str().unwrap()).await;
    }
    (stack, up)
}

/// A realm (made by mcpgw-setup from a spec) with group `gw-readers`, an optional client scope
/// `gw-echo` (it appears in the token's `scope` when asked for), and two m2m clients whose
/// service accounts are in the group and whose tokens carry `groups`: `gw-m2m` with the
/// gateway's audience, and `gw-elsewhere` with another API's audience.
async fn keycloak_realm() -> FixtureRealm {
    let clients: String = [("gw-m2m", AUDIENCE), ("gw-elsewhere", "some-other-api")]
        .map(|(client_id, audience)| {
            format!(
                r#"
[[clients]]
client_id = "{client_id}"
kind = "m2m"
optional_scopes = ["gw-echo"]
service_account_groups = ["gw-readers"]
mappers = [
  {{ type = "audience", name = "aud", audience = "{audience}" }},
  {{ type = "groups", name = "groups" }},
]
"#
            )
        })
        .concat();
    let spec = format!(
        r#"
[realm]
name = "gw"

[[client_scopes]]
name = "gw-echo"

[[groups]]
name = "gw-readers"
{clients}"#
    );
    fixture::test_realm(&spec, None).await
}

/// A client credentials token of `realm`'s client `client_id`, asking for `scope` if given.
async fn client_credentials(realm: &FixtureRealm, client_id: &str, scope: Option<&str>) -> String {
    let secret = realm.client_secret(client_id).await.unwrap();
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret.as_str()),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let url = format!("{}/protocol/openid-connect/token", realm.issuer());
    fixture::access_token(&url, &form).await
}

fn scope_claim(claims: &Value) -> Vec<&str> {
    claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .collect()
}

fn audiences(claims: &Value) -> Vec<&str> {
    match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn a_keycloak_client_credentials_token_reaches_a_tool() {
    let realm = keycloak_realm().await;
    let issuer = realm.issuer();
    // Group `gw-readers` may look at the server but call nothing; the token scope `gw-echo`
    // (a scope document mapped to no group) may call echo.
    let readers = scope(
        "gw-readers",
        "gw-readers",
        SERVER,
        &[
            "initialize",
            "notifications/initialized",
            "ping",
            "tools/list",
        ],
        &[],
    );
    let (stack, up) = idp_stack(&trusting(&issuer, false), &[readers, echo_scope("gw-echo")]).await;

    // A machine-to-machine token with the gateway's audience, the group and the scope.
    let m2m = client_credentials(&realm, "gw-m2m", Some("gw-echo")).await;
    let claims = claims_of(&m2m);
    assert_eq!(claims["iss"], json!(issuer));
    assert!(audiences(&claims).contains(&AUDIENCE), "{claims}");
    assert_eq!(claims["groups"], json!(["gw-readers"]), "{claims}");
    assert!(scope_claim(&claims).contains(&"gw-echo"), "{claims}");
    let mut c = RawClient::new(&stack.url(), SERVER, Some(m2m));
    let init = c.initialize().await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    let list = c.request("tools/list", json!({})).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let names: Vec<&str> = list.last()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", list.text))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo"], "only the permitted tool is listed");
    let call = c.call("echo", json!({"text": "hello from keycloak"})).await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.text);
    assert_eq!(text_of(call.last()), "hello from keycloak", "{}", call.text);
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // The audit names the Keycloak subject (the client's service account).
    let sub = claims["sub"].as_str().expect("a sub claim").to_owned();
    let actors: Vec<String> = stack
        .audit_until("resource_id=weather&action=mcp.tool_call", |r| {
            r.iter().any(|e| e["actor"].is_string())
        })
        .await
        .iter()
        .filter_map(|e| e["actor"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(actors, [sub]);

    // The same client without the scope: the group lets it in, but not to call echo.
    let reader = client_credentials(&realm, "gw-m2m", None).await;
    let claims = claims_of(&reader);
    assert!(audiences(&claims).contains(&AUDIENCE), "{claims}");
    assert!(!scope_claim(&claims).contains(&"gw-echo"), "{claims}");
    let mut r = RawClient::new(&stack.url(), SERVER, Some(reader));
    let init = r.initialize().await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    let denied = r.call("echo", json!({"text": "x"})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    let challenge = denied.header("www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"gw-echo\""),
        "names the scope that would allow it: {challenge}"
    );
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the denied call never reached the server"
    );

    // A Keycloak token with the group and the scope, but for another audience.
    let elsewhere = client_credentials(&realm, "gw-elsewhere", Some("gw-echo")).await;
    let claims = claims_of(&elsewhere);
    assert!(!audiences(&claims).contains(&AUDIENCE), "{claims}");
    assert!(scope_claim(&claims).contains(&"gw-echo"), "{claims}");
    let mut e = RawClient::new(&stack.url(), SERVER, Some(elsewhere));
    let r = e.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let challenge = r.header("www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("audience"), "{challenge}");
    realm.delete().await.unwrap();
}

/// A browser session at the auth-server: keeps its cookies, sends the CSRF token.
struct AuthSession {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    csrf: String,
}

impl AuthSession {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, String) {
        let jar = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if jar.is_empty() {
            req
        } else {
            req.header(reqwest::header::COOKIE, jar)
        };
        let r = req.send().await.expect("the auth-server answers");
        for c in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let c = c.to_str().unwrap_or("");
            if let Some((k, v)) = c.split(';').next().and_then(|p| p.split_once('=')) {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let status = r.status();
        (status, r.text().await.unwrap_or_default())
    }

    /// Signs in with the login form.
    async fn login(base: &str, username: &str, password: &str) -> Self {
        let mut s = Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            csrf: String::new(),
        };
        let (status, form) = s.send(s.http.get(format!("{base}/login"))).await;
        assert_eq!(status, StatusCode::OK, "{form}");
        let marker = "name=\"form_token\" value=\"";
        let start = form.find(marker).expect("the form has a form_token") + marker.len();
        let form_token =
            form[start..start + form[start..].find('"').unwrap()].replace("&amp;", "&");
        let (status, text) = s
            .send(s.http.post(format!("{base}/login")).form(&[
                ("username", username),
                ("password", password),
                ("form_token", form_token.as_str()),
            ]))
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "login: {text}");
        let (status, text) = s.send(s.http.get(format!("{base}/api/v1/csrf"))).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let csrf: Value = serde_json::from_str(&text).unwrap();
        s.csrf = csrf["csrf_token"]
            .as_str()
            .expect("a CSRF token")
            .to_owned();
        s
    }

    async fn api(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, text) = self.send(req).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Mints an agent token with `scopes`: (token, jti).
    async fn mint(&mut self, scopes: &[&str]) -> (String, String) {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"scopes": scopes, "description": "gateway test"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["jti"].as_str().unwrap().to_owned(),
        )
    }
}

/// The real auth-server on SQLite in `dir` with fast password hashing, issuing tokens for the
/// gateway's audience, plus `extra` TOML; and its bootstrap admin's password.
async fn local_auth_server(
    dir: &std::path::Path,
    extra: &str,
) -> (auth_server::app::Running, String) {
    let d = dir.display();
    let config = auth_server::config::AuthConfig::from_toml_layers(&[&format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n\
         [store]\nurl = \"sqlite://{d}/auth.db\"\n[session]\ncookie_secure = false\n\
         [local.password_hash]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\
         [tokens]\naudience = \"{AUDIENCE}\"\n{extra}"
    )])
    .expect("auth-server test config");
    let auth = auth_server::app::start(config)
        .await
        .expect("auth-server starts");
    let password = auth
        .bootstrap_password
        .as_ref()
        .expect("a bootstrap admin")
        .expose_secret()
        .to_owned();
    (auth, password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_at_the_auth_server_stops_working_at_the_gateway() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The real auth-server: its bootstrap admin holds the scope `gw-echo`, and its tokens are
    // for the gateway's audience.
    let auth_dir = tempfile::tempdir().unwrap();
    let (auth, password) = local_auth_server(
        auth_dir.path(),
        "[group_scopes]\nmcpgw-admins = [\"gw-echo\"]\n",
    )
    .await;
    let issuer = auth.public_url.clone();
    let trust = trusting(&issuer, true);
    let (stack, up) = idp_stack(&trust, &[echo_scope("gw-echo")]).await;

    let mut admin = AuthSession::login(&format!("http://{}", auth.addr), "admin", &password).await;
    let (token, jti) = admin.mint(&["gw-echo"]).await;
    let (kept, _) = admin.mint(&["gw-echo"]).await;
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], json!(issuer));
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "gw-echo");
    assert_eq!(claims["jti"], json!(jti));

    let mut c = RawClient::new(&stack.url(), SERVER, Some(token.clone()));
    let init = c.initialize().await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    // The first request verified the token; these come from the gateway's token cache.
    for i in 0..2 {
        let call = c.call("echo", json!({"text": format!("before {i}")})).await;
        assert_eq!(call.status, StatusCode::OK, "{}", call.text);
        assert_eq!(text_of(call.last()), format!("before {i}"));
    }
    let mut k = RawClient::new(&stack.url(), SERVER, Some(kept.clone()));
    assert_eq!(k.initialize().await.status, StatusCode::OK);

    let (status, body) = admin
        .api(Method::DELETE, &format!("/api/v1/tokens/{jti}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let revoked_at = Instant::now();

    // The cached token is refused once the gateway has fetched the revocation list (at most
    // every 2 s); until then it may still pass.
    let mut passed = 0;
    let refused = loop {
        let r = c.call("echo", json!({"text": "after"})).await;
        if r.status == StatusCode::UNAUTHORIZED {
            break r;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        passed += 1;
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the gateway still accepts the revoked token {:?} after the revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let challenge = refused.header("www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("revoked"), "{challenge}");
    // Still refused: on the session, from a new client, and by a gateway that never saw it.
    let again = c.call("echo", json!({"text": "again"})).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.text);
    assert!(
        again
            .header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    let mut fresh = RawClient::new(&stack.url(), SERVER, Some(token.clone()));
    let r = fresh.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let gw2 = stack.start_gateway("gw2", &trust).await;
    wait_routed(&gw2, SERVER, true).await;
    for _ in 0..200 {
        if gw2
            .state
            .table
            .current()
            .documents
            .iter()
            .any(|d| d.name() == "gw-echo")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut other = RawClient::new(&gw2.url(), SERVER, Some(token));
    let r = other.initialize_raw().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.header("www-authenticate").contains("revoked"));

    // The other token keeps working, at both gateways.
    let call = k.call("echo", json!({"text": "kept"})).await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.text);
    assert_eq!(text_of(call.last()), "kept");
    let mut k2 = RawClient::new(&gw2.url(), SERVER, Some(kept));
    assert_eq!(k2.initialize().await.status, StatusCode::OK);
    let call = k2.call("echo", json!({"text": "kept too"})).await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.text);
    assert_eq!(text_of(call.last()), "kept too");
    assert_eq!(
        up.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        4 + passed,
        "no call with the revoked token reached the server once refused"
    );
    gw2.stop().await;
    auth.stop().await;
}

/// The scopes README.md's quick start tells a new user to mint, in its words "with the scopes
/// `a` and `b`; …": read from the README itself, so the README and this test cannot disagree.
fn readme_quick_start_scopes() -> Vec<String> {
    // Line breaks are layout: read the text with every run of whitespace as one space.
    let readme = include_str!("../../../../README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let at = readme
        .find("with the scopes `")
        .expect("README.md's quick start names the scopes to mint");
    let sentence = &readme[at..at + readme[at..].find(';').expect("the sentence ends with ;")];
    sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_token_lists_and_calls_the_registry_mcp_server_through_the_gateway() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The auth-server on `make run`'s embedded defaults (its admin's `group_scopes` untouched);
    // only addresses, storage and the audience are the test's.
    let auth_dir = tempfile::tempdir().unwrap();
    let (auth, password) = local_auth_server(auth_dir.path(), "").await;
    let stack = Stack::start_with(&trusting(&auth.public_url, true)).await;
    // What `make run`'s registry does at start: its own MCP server, and the demo's documents.
    registry::mcp::ensure_registered(&stack.registry.state, stack.registry.addr).await;
    registry::demo::seed_demo_scopes(&stack.registry.state.registry)
        .await
        .expect("the demo scopes are seeded");
    stack
        .register(
            SERVER,
            json!({"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"}),
            json!({}),
        )
        .await;
    wait_routed(&stack.gateway, "mcpgw-registry", true).await;
    wait_policy(&stack).await;
    for name in ["mcp-servers-unrestricted/execute", "mcp-registry-admin"] {
        wait_scope(&stack, name).await;
    }

    let scopes = readme_quick_start_scopes();
    assert!(!scopes.is_empty(), "README.md names no scopes");
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let mut admin = AuthSession::login(&format!("http://{}", auth.addr), "admin", &password).await;
    let (token, _) = admin.mint(&scopes).await;
    let url = format!("{}/mcpgw-registry/mcp", stack.url());
    let out = crate::peers::py_client(&url, &token, &["--call", "list_servers"]).await;
    let tools = out["tools"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert!(tools.contains(&json!("list_servers")), "{out}");
    assert_ne!(out["call"]["result"]["isError"], true, "{out}");
    let listed = crate::registry_mcp::paths(&out);
    assert!(
        listed.contains(&SERVER.to_owned()),
        "the README's token ({scopes:?}) lists the catalog through the registry's MCP server: {out}"
    );
    auth.stop().await;
}

/// A realm whose client is named like the gateway's audience, so its ID tokens carry
/// `aud: mcpgw-gateway`: a dev user `alice` signs in with the password grant.
async fn id_token_realm() -> FixtureRealm {
    let spec = format!(
        r#"
[realm]
name = "gwid"

[[groups]]
name = "gw-readers"

[[clients]]
client_id = "{AUDIENCE}"
kind = "m2m"
password_grant = true
mappers = [
  {{ type = "audience", name = "aud", audience = "{AUDIENCE}" }},
  {{ type = "groups", name = "groups" }},
]

[[dev_users]]
username = "alice"
email = "alice@example.test"
first_name = "Alice"
last_name = "Test"
groups = ["gw-readers"]
"#
    );
    fixture::test_realm(&spec, None).await
}

fn keep_cookies(jar: &mut BTreeMap<String, String>, r: &reqwest::Response) {
    for c in r.headers().get_all(reqwest::header::SET_COOKIE) {
        let c = c.to_str().unwrap_or("");
        if let Some((k, v)) = c.split(';').next().and_then(|p| p.split_once('=')) {
            jar.insert(k.to_owned(), v.to_owned());
        }
    }
}

/// Signs in at the oidc-provider (`scripts/deps/oidc-provider`) as its user with the code flow
/// (PKCE, a nonce) as a browser and its client `mcpgw-web` would, and returns the token
/// response: `id_token` (for `aud: mcpgw-web`) and `access_token`.
async fn oidc_provider_code_flow(issuer: &str) -> Value {
    use sha2::Digest;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect_uri = "http://127.0.0.1/callback";
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut location = url::Url::parse_with_params(
        &format!("{issuer}/auth"),
        &[
            ("client_id", "mcpgw-web"),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("state", "s-1"),
        ],
    )
    .unwrap()
    .to_string();
    let mut cookies = BTreeMap::<String, String>::new();
    let mut code = None;
    for _ in 0..20 {
        if location.starts_with(redirect_uri) {
            let url = url::Url::parse(&location).unwrap();
            code = url
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned());
            break;
        }
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let r = http
            .get(&location)
            .header(reqwest::header::COOKIE, jar.clone())
            .send()
            .await
            .unwrap();
        keep_cookies(&mut cookies, &r);
        let base = url::Url::parse(&location).unwrap();
        if r.status().is_redirection() {
            let next = r.headers()["location"].to_str().unwrap().to_owned();
            location = base.join(&next).unwrap().to_string();
            continue;
        }
        let page = r.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("a login form at the provider: {page}"))
            .replace("&amp;", "&");
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let r = http
            .post(base.join(&action).unwrap())
            .header(reqwest::header::COOKIE, jar)
            .form(&[("username", "alice"), ("password", "alice-password")])
            .send()
            .await
            .unwrap();
        keep_cookies(&mut cookies, &r);
        assert!(r.status().is_redirection(), "login: {}", r.status());
        let next = r.headers()["location"].to_str().unwrap().to_owned();
        location = base.join(&next).unwrap().to_string();
    }
    let code = code.expect("the provider sent the browser back with a code");
    let discovery: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r: Value = http
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth("mcpgw-web", Some("mcpgw-web-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["id_token"].is_string(), "{r}");
    r
}

#[tokio::test]
async fn real_id_tokens_for_a_configured_audience_are_refused_and_access_tokens_pass() {
    let realm = id_token_realm().await;
    let keycloak = realm.issuer();
    let second = env("MCPGW_TEST_OIDC_URL", "oidc.sh start");
    // Both issuers trusted, with the audiences their ID tokens carry (the client ids), and
    // any header type (oidc-provider's ID tokens may carry none): only the payload tells.
    let toml = format!(
        "[[auth.issuers]]\nissuer = \"{keycloak}\"\naudiences = [\"{AUDIENCE}\"]\n\
         [[auth.issuers]]\nissuer = \"{second}\"\naudiences = [\"mcpgw-web\", \"mcp-gateway\"]\ntoken_types = []\n"
    );
    let readers = scope(
        "gw-readers",
        "gw-readers",
        SERVER,
        &[
            "initialize",
            "notifications/initialized",
            "ping",
            "tools/list",
        ],
        &[],
    );
    let everyone = json!({"name": "mcp-users", "group_mappings": ["mcp-users"],
        "server_access": [{"server": SERVER, "methods": ["initialize", "notifications/initialized", "ping"], "tools": []}]});
    let (stack, _up) = idp_stack(&toml, &[readers, everyone]).await;

    // Keycloak: the password grant with `openid` answers an access token and an ID token.
    let password = realm.user_password("alice").await.unwrap();
    let secret = realm.client_secret(AUDIENCE).await.unwrap();
    let r: Value = client()
        .post(format!("{keycloak}/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", AUDIENCE),
            ("client_secret", secret.as_str()),
            ("username", "alice"),
            ("password", password.as_str()),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kc_id = r["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let kc_access = r["access_token"].as_str().unwrap().to_owned();
    let id_claims = claims_of(&kc_id);
    assert_eq!(id_claims["aud"], AUDIENCE, "{id_claims}");

    // oidc-provider (standing for Entra ID, Okta, ...): the code flow with a nonce.
    let tokens = oidc_provider_code_flow(&second).await;
    let op_id = tokens["id_token"].as_str().unwrap().to_owned();
    let op_claims = claims_of(&op_id);
    assert_eq!(op_claims["aud"], "mcpgw-web", "{op_claims}");
    assert!(op_claims["nonce"].is_string(), "{op_claims}");

    for (who, id_token) in [("keycloak", &kc_id), ("oidc-provider", &op_id)] {
        let mut c = RawClient::new(&stack.url(), SERVER, Some(id_token.clone()));
        let r = c.initialize_raw().await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{who}: {}", r.text);
        let challenge = r.header("www-authenticate");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{who}: {challenge}"
        );
        assert!(challenge.contains("ID token"), "{who}: {challenge}");
    }
    // The access tokens of the same sign-ins pass (Keycloak's `typ: Bearer`, oidc-provider's
    // RFC 9068 `at+jwt`).
    for (who, access) in [
        ("keycloak", kc_access),
        (
            "oidc-provider",
            tokens["access_token"].as_str().unwrap().to_owned(),
        ),
    ] {
        let mut c = RawClient::new(&stack.url(), SERVER, Some(access));
        let r = c.initialize_raw().await;
        assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.text);
    }
    realm.delete().await.unwrap();
}

#[tokio::test]
async fn a_token_without_a_subject_is_refused_and_callers_are_told_apart_by_subject_alone() {
    let (stack, _up) = stack_with(
        "quota",
        false,
        &["echo"],
        json!({"gateway": {"tool_calls_per_minute": {"echo": 2}}}),
    )
    .await;
    // One agent client, one display name, two subjects: the claims a name- or client-keyed
    // gateway would confuse.
    let token = |sub: Option<&str>| {
        let mut c = stack.issuer.claims("x", &["agents"], AUDIENCE);
        c["azp"] = json!("shared-agent");
        c["client_id"] = json!("shared-agent");
        c["preferred_username"] = json!("agent");
        match sub {
            Some(s) => c["sub"] = json!(s),
            None => {
                c.as_object_mut().unwrap().remove("sub");
            }
        }
        stack.issuer.sign(&c)
    };
    for _ in 0..2 {
        let mut anonymous = RawClient::new(&stack.url(), "quota", Some(token(None)));
        let r = anonymous.initialize_raw().await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        let challenge = r.header("www-authenticate");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("`sub`"), "{challenge}");
    }

    let mut first = RawClient::new(&stack.url(), "quota", Some(token(Some("agent-1"))));
    first.initialize().await;
    for _ in 0..2 {
        assert_eq!(
            first.call("echo", json!({"text": "x"})).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        first.call("echo", json!({"text": "x"})).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The second subject: not the first one's session, not its bucket.
    let mut second = RawClient::new(&stack.url(), "quota", Some(token(Some("agent-2"))));
    second.session = first.session.clone();
    let r = second.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    second.session = None;
    second.initialize().await;
    let r = second.call("echo", json!({"text": "x"})).await;
    assert_eq!(r.status, StatusCode::OK, "its own bucket: {}", r.text);
    // And its own audit subject.
    let actors_of = |r: &[Value]| -> std::collections::BTreeSet<String> {
        r.iter()
            .filter_map(|e| e["actor"].as_str().map(str::to_owned))
            .collect()
    };
    let actors = actors_of(
        &stack
            .audit_until("resource_id=quota&action=mcp.tool_call", |r| {
                actors_of(r).len() == 2
            })
            .await,
    );
    assert_eq!(
        actors.into_iter().collect::<Vec<_>>(),
        ["agent-1", "agent-2"]
    );
}
