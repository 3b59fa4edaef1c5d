//! `POST /api/v1/search`: ranking, filters, bad input, permission filtering (API keys, scoped
//! permissions, JWT callers whose policy allows only some tools), the index following every
//! change, a second replica on a shared store, and the quality set (NDCG@10, MRR, Recall@10).

use std::collections::HashMap;

use mcpgw_test_support::TestIssuer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, mongo_url, spawn, spawn_with, unique_name};

both_backends!(
    results_are_ranked_by_relevance_and_carry_what_a_client_needs,
    filters_narrow_the_results,
    bad_input_is_refused_naming_the_field,
    the_index_follows_every_change_at_once,
    a_jwt_caller_never_sees_a_tool_it_may_not_call,
    a_caller_limited_to_some_servers_sees_only_those,
    with_embeddings_a_query_is_found_by_meaning_and_unchanged_text_is_not_re_embedded,
);

fn tool(name: &str, description: &str, params: &[(&str, &str)]) -> Value {
    let props: serde_json::Map<String, Value> = params
        .iter()
        .map(|(p, d)| ((*p).to_owned(), json!({"type": "string", "description": d})))
        .collect();
    json!({"name": name, "description": description,
           "inputSchema": {"type": "object", "properties": props}})
}

async fn add_server(
    app: &TestApp,
    path: &str,
    name: &str,
    description: &str,
    tags: &[&str],
    tools: Vec<Value>,
) {
    app.register(json!({
        "path": path, "name": name, "description": description, "tags": tags,
        "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
        "governance": {"owner_team": "platform"}
    }))
    .await;
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/servers/{path}/tools"),
            Some(json!({"tools": tools})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// Three servers: weather, payments and a code host.
async fn seed(app: &TestApp) {
    add_server(
        app,
        "weather",
        "Weather",
        "Forecasts and alerts",
        &["weather", "public"],
        vec![
            tool(
                "get_forecast",
                "Weather forecast for a city",
                &[("city", "City name")],
            ),
            tool(
                "get_alerts",
                "Severe weather alerts for a state",
                &[("state", "Two-letter code")],
            ),
        ],
    )
    .await;
    add_server(
        app,
        "payments",
        "Payments",
        "Charges and refunds",
        &["finance"],
        vec![
            tool(
                "create_refund",
                "Refund a payment",
                &[("payment_id", "The payment")],
            ),
            tool("list_charges", "List recent charges", &[]),
        ],
    )
    .await;
    add_server(
        app,
        "code",
        "Code host",
        "Repositories and pull requests",
        &["dev", "public"],
        vec![tool(
            "create_pull_request",
            "Open a pull request",
            &[("branch", "Source branch")],
        )],
    )
    .await;
}

async fn search_as(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let r = app
        .call_as(Some(key), Method::POST, "/api/v1/search", Some(body), &[])
        .await;
    (r.status, r.body)
}

async fn search(app: &TestApp, body: Value) -> Value {
    let (status, body) = search_as(app, &app.key, body).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    body
}

/// `server/name` of each result, in order.
fn names(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["server"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

async fn results_are_ranked_by_relevance_and_carry_what_a_client_needs(backend: Backend) {
    let app = spawn(backend).await;
    seed(&app).await;
    let a = search(
        &app,
        json!({"query": "what is the weather forecast for Paris"}),
    )
    .await;
    assert_eq!(a["mode"], "lexical");
    let results = a["results"].as_array().unwrap();
    assert_eq!(results[0]["kind"], "tool");
    assert_eq!(names(&a)[0], "weather/get_forecast", "{a:#}");
    assert_eq!(results[0]["rank"], 1);
    assert_eq!(results[0]["server_name"], "Weather");
    assert_eq!(
        results[0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    // Scores descend, ranks count up.
    for (i, pair) in results.windows(2).enumerate() {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
        assert_eq!(pair[1]["rank"], i + 2);
    }
    // Nothing about payments matches the weather.
    assert!(!names(&a).iter().any(|n| n.starts_with("payments/")));
    // A server document: no input schema.
    let a = search(&app, json!({"query": "refunds", "kinds": ["server"]})).await;
    assert_eq!(names(&a), ["payments/Payments"]);
    assert!(a["results"][0].get("input_schema").is_none());
    // The limit cuts the list.
    let a = search(
        &app,
        json!({"query": "weather alerts forecast", "limit": 1}),
    )
    .await;
    assert_eq!(a["results"].as_array().unwrap().len(), 1);
}

async fn filters_narrow_the_results(backend: Backend) {
    let app = spawn(backend).await;
    seed(&app).await;
    let q = |extra: Value| {
        let mut body = json!({"query": "open create refund forecast weather pull request"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let all = names(&search(&app, q(json!({"kinds": ["tool"], "limit": 100}))).await);
    assert!(all.len() >= 4, "{all:?}");
    let tagged = names(
        &search(
            &app,
            q(json!({"kinds": ["tool"], "tags": ["public", "DEV"]})),
        )
        .await,
    );
    assert_eq!(tagged, ["code/create_pull_request"]);
    let one = names(&search(&app, q(json!({"server": "payments"}))).await);
    assert!(
        !one.is_empty() && one.iter().all(|n| n.starts_with("payments/")),
        "{one:?}"
    );
    // Retired servers are hidden unless the lifecycle filter names them.
    app.advance("payments", "retired").await;
    let after = names(&search(&app, q(json!({}))).await);
    assert!(
        !after.iter().any(|n| n.starts_with("payments/")),
        "{after:?}"
    );
    let retired = names(&search(&app, q(json!({"lifecycle": ["retired"]}))).await);
    assert!(!retired.is_empty() && retired.iter().all(|n| n.starts_with("payments/")));
    let drafts = names(&search(&app, q(json!({"lifecycle": ["draft"]}))).await);
    assert!(drafts.iter().all(|n| !n.starts_with("payments/")) && !drafts.is_empty());
    // Disabled servers are hidden with their tools.
    let r = app
        .post("/api/v1/servers/weather/toggle", json!({"enabled": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let off = names(&search(&app, json!({"query": "weather forecast"})).await);
    assert!(off.is_empty(), "{off:?}");
}

async fn bad_input_is_refused_naming_the_field(backend: Backend) {
    let app = spawn(backend).await;
    seed(&app).await;
    let long = "x".repeat(513);
    for (body, field) in [
        (json!({"query": ""}), "query"),
        (json!({"query": "   "}), "query"),
        (json!({"query": long}), "query"),
        (json!({"query": "a\u{0007}b"}), "query"),
        (json!({}), "query"),
        (json!({"query": "x", "limit": 0}), "limit"),
        (json!({"query": "x", "limit": 101}), "limit"),
        (json!({"query": "x", "limit": "ten"}), "limit"),
        (json!({"query": "x", "kinds": ["servers"]}), "kinds[0]"),
        (json!({"query": "x", "tags": ["ok", "Not OK"]}), "tags[1]"),
        (json!({"query": "x", "lifecycle": []}), "lifecycle"),
        (json!({"query": "x", "lifecycle": ["live"]}), "lifecycle[0]"),
        (json!({"query": "x", "server": "Not/A/Path"}), "server"),
        (json!({"query": "x", "sort": "name"}), "sort"),
    ] {
        let r = app.post("/api/v1/search", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.field(), field, "{body}: {:?}", r.body);
    }
    // No credentials: 401; a key without servers:read: 403.
    let r = app
        .call_as(
            None,
            Method::POST,
            "/api/v1/search",
            Some(json!({"query": "x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let audit_only = app.key_with(&["audit:read"]).await;
    let (status, _) = search_as(&app, &audit_only, json!({"query": "weather"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn the_index_follows_every_change_at_once(backend: Backend) {
    let app = spawn(backend).await;
    let find = |q: &'static str| {
        let app = &app;
        async move { names(&search(app, json!({"query": q, "limit": 100})).await) }
    };
    assert!(find("glacier").await.is_empty());
    add_server(
        &app,
        "ice",
        "Ice",
        "Glacier measurements",
        &["science"],
        vec![],
    )
    .await;
    assert_eq!(find("glacier").await, ["ice/Ice"]);
    // Tools set: each tool is found at once.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/servers/ice/tools",
            Some(json!({"tools": [tool("measure_thickness", "Ice sheet thickness", &[])]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(find("thickness").await, ["ice/measure_thickness"]);
    // Replaced tools: the old one is gone.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/servers/ice/tools",
            Some(json!({"tools": [tool("melt_rate", "Yearly melt", &[])]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(find("thickness").await.is_empty());
    assert_eq!(find("melt").await, ["ice/melt_rate"]);
    // A patch of the description: new words found, old words not.
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/servers/ice",
            Some(json!({"description": "Permafrost probes"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(find("glacier").await.is_empty());
    assert_eq!(find("permafrost").await, ["ice/Ice"]);
    // Lifecycle moves are reflected in the answer.
    app.transition("ice", "submitted").await;
    let a = search(&app, json!({"query": "permafrost"})).await;
    assert_eq!(a["results"][0]["lifecycle"], "submitted");
    app.transition("ice", "draft").await;
    // Delete: gone.
    let r = app.call(Method::DELETE, "/api/v1/servers/ice", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(find("permafrost").await.is_empty());
    assert!(find("melt").await.is_empty());
}

async fn jwt_app(backend: Backend) -> (TestApp, std::sync::Arc<TestIssuer>) {
    let idp = TestIssuer::start().await;
    let app = spawn_with(
        backend,
        &format!(
            "[auth]\n[[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"mcpgw-registry\"]\n",
            idp.issuer
        ),
    )
    .await;
    (app, idp)
}

async fn put_scope(app: &TestApp, doc: Value) {
    let name = doc["name"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::PUT, &format!("/api/v1/scopes/{name}"), Some(doc))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn a_jwt_caller_never_sees_a_tool_it_may_not_call(backend: Backend) {
    let (app, idp) = jwt_app(backend).await;
    seed(&app).await;
    // Forecasts only: may read every server, may call one tool.
    put_scope(&app, json!({"name": "forecasters", "group_mappings": ["forecasters"],
        "server_access": [{"server": "weather", "methods": ["tools/call"], "tools": ["get_forecast"]}],
        "ui_permissions": {"list_service": ["all"]}})).await;
    let token = idp.sign(&idp.claims("fran", &["forecasters"], "mcpgw-registry"));
    let body = json!({"query": "weather forecast alerts refund charges pull request", "kinds": ["tool"], "limit": 100});
    let (status, a) = search_as(&app, &token, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{a:?}");
    assert_eq!(names(&a), ["weather/get_forecast"]);
    // Servers stay visible (the caller may read them).
    let (_, a) = search_as(
        &app,
        &token,
        json!({"query": "refunds", "kinds": ["server"]}),
    )
    .await;
    assert_eq!(names(&a), ["payments/Payments"]);
    // An API key with servers:read sees every tool of the servers it may read.
    let viewer = app.key_with(&["servers:read"]).await;
    let (_, a) = search_as(&app, &viewer, body.clone()).await;
    assert_eq!(a["results"].as_array().unwrap().len(), 5, "{a:#}");
    // A write-protected server hides tools that are not read-only unless writing is granted.
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/servers/weather",
            Some(json!({"gateway": {"read_only": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let (_, a) = search_as(&app, &token, body.clone()).await;
    assert!(names(&a).is_empty(), "{a:#}");
    put_scope(&app, json!({"name": "forecasters", "group_mappings": ["forecasters"],
        "server_access": [{"server": "weather", "methods": ["tools/call"], "tools": ["get_forecast"], "allow_write": true}],
        "ui_permissions": {"list_service": ["all"]}})).await;
    let (_, a) = search_as(&app, &token, body).await;
    assert_eq!(names(&a), ["weather/get_forecast"]);
}

async fn a_caller_limited_to_some_servers_sees_only_those(backend: Backend) {
    let (app, idp) = jwt_app(backend).await;
    seed(&app).await;
    put_scope(
        &app,
        json!({"name": "coders", "group_mappings": ["coders"],
        "server_access": [{"server": "*", "methods": ["all"], "tools": ["all"]}],
        "ui_permissions": {"list_service": ["code"]}}),
    )
    .await;
    let token = idp.sign(&idp.claims("cody", &["coders"], "mcpgw-registry"));
    let (status, a) = search_as(
        &app,
        &token,
        json!({"query": "weather forecast refund pull request repositories", "limit": 100}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{a:?}");
    let found = names(&a);
    assert!(
        !found.is_empty() && found.iter().all(|n| n.starts_with("code/")),
        "{found:?}"
    );
    // A caller that may read no server at all is refused, as for lists.
    let nobody = idp.sign(&idp.claims("nobody", &["strangers"], "mcpgw-registry"));
    let (status, _) = search_as(&app, &nobody, json!({"query": "weather"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Two replicas on one MongoDB database: a change through one is found through the other
/// within the catalog cache's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_sees_changes_within_the_cache_expiry() {
    let db = unique_name("it");
    let key = mcpgw_core::secrets::Keyring::generate_base64();
    let dir = tempfile::tempdir().unwrap();
    let toml = |n: u8| {
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{}/{n}\"\n\
             [store]\nurl = \"{}\"\nmongo_database = \"{db}\"\ncatalog_cache_ms = 200\n\
             [egress]\nallow_loopback = true\n[secrets.sealing_key]\nvalue = \"{}\"\n",
            dir.path().display(),
            mongo_url(),
            secrecy::ExposeSecret::expose_secret(&key)
        )
    };
    for n in ["1", "2"] {
        std::fs::create_dir_all(dir.path().join(n)).unwrap();
    }
    let start = |text: String| async move {
        let config = registry::config::RegistryConfig::from_toml_layers(&[&text]).unwrap();
        registry::app::start(config).await.unwrap()
    };
    let a = start(toml(1)).await;
    let b = start(toml(2)).await;
    let admin = a
        .bootstrap_key
        .clone()
        .expect("the first replica creates the key");
    let http = reqwest::Client::new();
    let post = |addr: std::net::SocketAddr, path: &'static str, body: Value| {
        http.post(format!("http://{addr}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = post(
        a.addr,
        "/api/v1/servers",
        json!({
        "path": "tides", "name": "Tides", "description": "Tide tables for harbours",
        "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
        "governance": {"owner_team": "platform"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r: Value = post(b.addr, "/api/v1/search", json!({"query": "harbour tides"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["results"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(r["results"][0]["server"], "tides");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica b never saw the server: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

// ---- Quality ---------------------------------------------------------------------------------

/// The NDCG@10 the quality set must keep (measured 0.726 in lexical mode; see
/// docs/performance.md, "Search quality"). A little under, so that only a real regression fails.
const NDCG_FLOOR: f64 = 0.70;

#[derive(serde::Deserialize)]
struct Labelled {
    query: String,
    relevant: HashMap<String, u32>,
}

fn dcg(gains: impl Iterator<Item = u32>) -> f64 {
    gains
        .enumerate()
        .map(|(i, g)| (2f64.powi(g as i32) - 1.0) / ((i + 2) as f64).log2())
        .sum()
}

/// Loads the quality catalog (131 servers shaped after public MCP servers) into a real
/// registry, runs every labelled query over HTTP, and computes NDCG@10, MRR and Recall@10 over
/// tool results. Writes the numbers to `MCPGW_SEARCH_QUALITY_OUT` when set (the bench script
/// puts them in docs/performance.md) and fails below the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_quality_meets_the_floor() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let catalog: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{data}/search-catalog.json")).unwrap(),
    )
    .unwrap();
    let queries: Vec<Labelled> = serde_json::from_str(
        &std::fs::read_to_string(format!("{data}/search-queries.json")).unwrap(),
    )
    .unwrap();
    let app = spawn(Backend::Sqlite).await;
    for s in &catalog {
        let tags: Vec<&str> = s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        add_server(
            &app,
            s["path"].as_str().unwrap(),
            s["name"].as_str().unwrap(),
            s["description"].as_str().unwrap(),
            &tags,
            s["tools"].as_array().unwrap().clone(),
        )
        .await;
    }
    let (mut ndcg, mut mrr, mut recall) = (0.0, 0.0, 0.0);
    let verbose = std::env::var_os("MCPGW_SEARCH_QUALITY_VERBOSE").is_some();
    for q in &queries {
        let a = search(
            &app,
            json!({"query": q.query, "kinds": ["tool"], "limit": 10}),
        )
        .await;
        let got = names(&a);
        let grade = |id: &String| q.relevant.get(id).copied().unwrap_or(0);
        let mut ideal: Vec<u32> = q.relevant.values().copied().collect();
        ideal.sort_unstable_by(|a, b| b.cmp(a));
        let n = dcg(got.iter().map(grade)) / dcg(ideal.into_iter().take(10));
        ndcg += n;
        mrr += got
            .iter()
            .position(|id| grade(id) > 0)
            .map_or(0.0, |p| 1.0 / (p + 1) as f64);
        recall +=
            got.iter().filter(|id| grade(id) > 0).count() as f64 / q.relevant.len().min(10) as f64;
        if verbose && n < 0.8 {
            eprintln!(
                "{n:.2} {:?}\n     got {got:?}\n    want {:?}",
                q.query, q.relevant
            );
        }
    }
    let count = queries.len() as f64;
    let tools: usize = catalog
        .iter()
        .map(|s| s["tools"].as_array().unwrap().len())
        .sum();
    let report = json!({
        "servers": catalog.len(), "tools": tools, "queries": queries.len(),
        "ndcg_at_10": ndcg / count, "mrr": mrr / count, "recall_at_10": recall / count,
    });
    eprintln!("search quality: {report}");
    if let Some(out) = std::env::var_os("MCPGW_SEARCH_QUALITY_OUT") {
        std::fs::write(out, report.to_string()).unwrap();
    }
    assert!(catalog.len() >= 100 && queries.len() >= 50);
    assert!(
        ndcg / count >= NDCG_FLOOR,
        "NDCG@10 {} fell below {NDCG_FLOOR}",
        ndcg / count
    );
}

// ---- The semantic leg: an OpenAI-compatible embedding provider -----------------------------

/// The key the stand-in provider wants (given to the registry through `api_key_file`).
const EMBEDDING_KEY: &str = "test-embedding-key";

/// Concepts of the toy model, one per dimension, with the words that carry them.
const CONCEPTS: [&[&str]; 4] = [
    &[
        "weather",
        "forecast",
        "forecasts",
        "alerts",
        "umbrella",
        "drizzle",
        "rain",
    ],
    &[
        "payment",
        "payments",
        "refund",
        "refunds",
        "charges",
        "reimburse",
        "money",
    ],
    &["code", "repositories", "pull", "request", "branch", "merge"],
    &["ice", "glacier", "frost"],
];

/// The toy model: how often each concept's words occur in `text`.
fn toy_embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0.0; CONCEPTS.len()];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
    {
        for (dim, words) in CONCEPTS.iter().enumerate() {
            if words.contains(&word.as_str()) {
                v[dim] += 1.0;
            }
        }
    }
    v
}

/// A STAND-IN embedding provider: a real HTTP server speaking the OpenAI embeddings wire format
/// (`POST /v1/embeddings`, bearer key, `{model, input}` → `data[i].embedding`), with a toy
/// model ([`toy_embedding`]), since no embedding model can run on this machine. The wire format
/// is real; the model is not, and says nothing about semantic quality. Returns its base URL and
/// the number of texts it has embedded.
async fn toy_provider() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::HeaderMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let texts = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = texts.clone();
    let app = axum::Router::new().route(
        "/v1/embeddings",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                let bearer = format!("Bearer {EMBEDDING_KEY}");
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&bearer) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": "key"})),
                    );
                }
                assert_eq!(body["model"], "toy-concepts");
                let inputs = body["input"].as_array().expect("input is a list");
                // Document texts are "name. description…"; the test's queries have no ". ".
                let documents = inputs
                    .iter()
                    .filter(|t| t.as_str().unwrap().contains(". "))
                    .count();
                counter.fetch_add(documents, Ordering::SeqCst);
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        json!({"object": "embedding", "index": i,
                               "embedding": toy_embedding(t.as_str().unwrap())})
                    })
                    .collect();
                (
                    StatusCode::OK,
                    axum::Json(json!({"object": "list", "data": data})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), texts)
}

fn embeddings_toml(base_url: &str, key_file: &std::path::Path, dimensions: usize) -> String {
    format!(
        "[search.embeddings]\nprovider = \"openai_compatible\"\nbase_url = \"{base_url}\"\n\
         model = \"toy-concepts\"\napi_key_file = \"{}\"\ndimensions = {dimensions}\n\
         batch_size = 4\nquery_timeout_ms = 2000\n",
        key_file.display()
    )
}

fn key_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), format!("{EMBEDDING_KEY}\n")).unwrap();
    f
}

/// Searches until `done` holds for the answer (documents are embedded in the background).
async fn search_until(app: &TestApp, body: Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let a = search(app, body.clone()).await;
        if done(&a) {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "never reached: {a:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn with_embeddings_a_query_is_found_by_meaning_and_unchanged_text_is_not_re_embedded(
    backend: Backend,
) {
    let (base_url, embedded) = toy_provider().await;
    let key = key_file();
    let app = spawn_with(backend, &embeddings_toml(&base_url, key.path(), 4)).await;
    seed(&app).await;
    // No seeded text contains "umbrella" or "drizzle": BM25 alone finds nothing.
    let lexical_only = names(&search(&app, json!({"query": "umbrella drizzle"})).await);
    assert!(lexical_only.is_empty() || lexical_only.iter().all(|n| n.starts_with("weather")));
    let a = search_until(&app, json!({"query": "umbrella drizzle"}), |a| {
        names(a).contains(&"weather/get_forecast".to_owned())
    })
    .await;
    assert_eq!(a["mode"], "hybrid", "{a:#}");
    assert!(a.get("notice").is_none(), "{a:#}");
    let found = names(&a);
    assert!(found.iter().all(|n| n.starts_with("weather/")), "{found:?}");
    // Lexical matches still count: an exact name is near the top.
    let a = search(&app, json!({"query": "create_refund"})).await;
    assert_eq!(a["mode"], "hybrid");
    assert!(
        names(&a)[..2].contains(&"payments/create_refund".to_owned()),
        "{a:#}"
    );

    // The seed is 3 servers and 5 tools, 8 distinct texts, each embedded once although the
    // server documents were indexed twice (registration, then tools).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while embedded.load(std::sync::atomic::Ordering::SeqCst) < 8 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = embedded.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, 8);
    // The same tools written again: nothing new is embedded.
    let same = vec![
        tool(
            "create_refund",
            "Refund a payment",
            &[("payment_id", "The payment")],
        ),
        tool("list_charges", "List recent charges", &[]),
    ];
    let r = app
        .call(
            Method::PUT,
            "/api/v1/servers/payments/tools",
            Some(json!({"tools": same})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // One changed description: exactly one new text, and the new meaning is found.
    let changed = vec![
        tool(
            "create_refund",
            "Refund a payment",
            &[("payment_id", "The payment")],
        ),
        tool("list_charges", "Glacier frost readings", &[]),
    ];
    let r = app
        .call(
            Method::PUT,
            "/api/v1/servers/payments/tools",
            Some(json!({"tools": changed})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    search_until(&app, json!({"query": "ice"}), |a| {
        names(a).contains(&"payments/list_charges".to_owned())
    })
    .await;
    assert_eq!(
        embedded.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"mcpgw_registry_embedding_requests_total{kind="documents",outcome="ok"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_or_wrong_search_answers_lexically_and_says_so() {
    // Nothing listens on a port just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let key = key_file();
    let app = spawn_with(
        Backend::Sqlite,
        &embeddings_toml(&format!("http://{closed}/v1"), key.path(), 4),
    )
    .await;
    seed(&app).await;
    let a = search(&app, json!({"query": "weather forecast"})).await;
    assert_eq!(a["mode"], "lexical", "{a:#}");
    assert_eq!(names(&a)[0], "weather/get_forecast");
    let notice = a["notice"].as_str().unwrap();
    assert!(notice.contains("semantic search unavailable"), "{notice}");
    assert!(!notice.contains(EMBEDDING_KEY));
    // The next searches do not wait for the provider again for a while.
    let a = search(&app, json!({"query": "weather forecast"})).await;
    assert_eq!(a["mode"], "lexical");
    assert!(a["notice"].as_str().unwrap().contains("paused"), "{a:#}");
    // Bad input is still refused naming the field, before any provider call.
    let (status, body) = search_as(&app, &app.key, json!({"query": ""})).await;
    assert!(status.is_client_error(), "{body:?}");
    assert_eq!(body["field"], "query");

    // A provider whose vectors do not have the configured dimensions is not trusted.
    let (base_url, embedded) = toy_provider().await;
    let app = spawn_with(Backend::Sqlite, &embeddings_toml(&base_url, key.path(), 5)).await;
    seed(&app).await;
    let a = search(&app, json!({"query": "weather forecast"})).await;
    assert_eq!(a["mode"], "lexical", "{a:#}");
    assert!(
        a["notice"].as_str().unwrap().contains("dimensions"),
        "{a:#}"
    );
    assert_eq!(names(&a)[0], "weather/get_forecast");
    // The provider was reached (and refused by the check), so the failure is not "down".
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(embedded.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_embeddings_config_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = crate::helpers::backend_toml(Backend::Sqlite, &dir);
    // The cloud metadata address is never an allowed destination.
    let layer = "[search.embeddings]\nprovider = \"openai_compatible\"\n\
                 base_url = \"http://169.254.169.254/v1\"\nmodel = \"m\"\ndimensions = 4\n";
    let config = registry::config::RegistryConfig::from_toml_layers(&[&base, layer]).unwrap();
    let err = format!("{:#}", registry::app::start(config).await.err().unwrap());
    assert!(err.contains("search.embeddings.base_url"), "{err}");
    // An API key file that does not exist.
    let layer = "[search.embeddings]\nprovider = \"openai_compatible\"\n\
                 base_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\ndimensions = 4\n\
                 api_key_file = \"/nonexistent/key\"\n";
    let config = registry::config::RegistryConfig::from_toml_layers(&[&base, layer]).unwrap();
    let err = format!("{:#}", registry::app::start(config).await.err().unwrap());
    assert!(err.contains("search.embeddings.api_key_file"), "{err}");
    // Static rules are refused when the config is loaded (as --check-config does).
    let layer = "[search.embeddings]\nprovider = \"openai_compatible\"\n\
                 base_url = \"http://127.0.0.1:9/v1\"\ndimensions = 4\n";
    let err = registry::config::RegistryConfig::from_toml_layers(&[&base, layer])
        .unwrap_err()
        .to_string();
    assert!(err.contains("search.embeddings.model"), "{err}");
}
