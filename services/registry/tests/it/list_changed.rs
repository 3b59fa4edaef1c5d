//! Tool discovery on `notifications/tools/list_changed`, against real rmcp servers in-process
//! (Streamable HTTP, 2026-07-28 `subscriptions/listen`): one whose tools change while it runs
//! and which notifies its listeners, and one that does not declare the capability.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool,
};
use rmcp::service::{RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use mcpgw_core::domain::ServerPath;
use registry::health::list_changed::WatchState;

use crate::helpers::*;

/// The changing server's state: its tool names and the open listen streams.
#[derive(Default)]
struct Shared {
    tools: Vec<&'static str>,
    listeners: Vec<SubscriptionSink>,
    /// `tools/list` calls answered.
    lists: usize,
}

#[derive(Clone)]
struct Changing {
    shared: Arc<Mutex<Shared>>,
    /// Whether it declares `tools.listChanged` (and accepts listen requests).
    announces: bool,
}

impl ServerHandler for Changing {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder().enable_tools();
        let caps = if self.announces {
            caps.enable_tool_list_changed().build()
        } else {
            caps.build()
        };
        ServerConfig::new(caps)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = Arc::new(json!({"type": "object"}).as_object().unwrap().clone());
        let tools = {
            let mut shared = self.shared.lock().unwrap();
            shared.lists += 1;
            shared.tools.clone()
        };
        Ok(ListToolsResult::with_all_items(
            tools
                .into_iter()
                .map(|name| Tool::new(name, format!("The {name} tool"), schema.clone()))
                .collect(),
        ))
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.announces.then(|| requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.shared
            .lock()
            .unwrap()
            .listeners
            .push(context.sink().clone());
        context.cancelled().await;
        Ok(())
    }
}

async fn start(announces: bool, shared: Arc<Mutex<Shared>>) -> String {
    let service: StreamableHttpService<Changing, LocalSessionManager> = StreamableHttpService::new(
        move || {
            Ok(Changing {
                shared: Arc::clone(&shared),
                announces,
            })
        },
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

fn body(path: &str, url: &str) -> Value {
    let mut b = server_body(path);
    b["endpoint"] = json!({"transport": "streamable-http", "url": url});
    b
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tool_names(view: &Value) -> Vec<String> {
    let mut names: Vec<String> = view["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_list_changed_notification_rediscovers_tools_without_a_refresh() {
    let config = "[health]\ninterval_seconds = 5\n";
    for backend in [Backend::Sqlite, Backend::Mongo] {
        let changing = Arc::new(Mutex::new(Shared {
            tools: vec!["lookup"],
            ..Default::default()
        }));
        let plain = Arc::new(Mutex::new(Shared {
            tools: vec!["lookup"],
            ..Default::default()
        }));
        let changing_url = start(true, Arc::clone(&changing)).await;
        let plain_url = start(false, Arc::clone(&plain)).await;
        let app = spawn_with(backend, config).await;
        let watchers = &app.running.state.health.watchers;
        app.register(body("changing", &changing_url)).await;
        app.register(body("plain", &plain_url)).await;
        let (changing_path, plain_path) = (
            ServerPath::parse("changing").unwrap(),
            ServerPath::parse("plain").unwrap(),
        );
        // First check → healthy → discovery; the watcher opens its listen stream.
        wait_for("the watcher to listen", async || {
            watchers.state(&changing_path) == Some(WatchState::Listening)
        })
        .await;
        wait_for("the capability-less server to be left alone", async || {
            watchers.state(&plain_path) == Some(WatchState::Unsupported)
        })
        .await;
        assert!(plain.lock().unwrap().listeners.is_empty());
        wait_for("the first discovery", async || {
            tool_names(&app.get("/api/v1/servers/changing/tools").await.body) == ["lookup"]
        })
        .await;
        // The review approves the discovered tools as the baseline.
        app.advance("changing", "approved_dev").await;
        let view = app.get("/api/v1/servers/changing").await.body;
        assert_eq!(view["tools_status"], "approved", "{backend:?}: {view}");

        // The server changes its tools and says so three times in a burst.
        let sinks = {
            let mut s = changing.lock().unwrap();
            s.tools.push("exfiltrate");
            (s.listeners.clone(), s.lists)
        };
        let (sinks, lists_before) = sinks;
        assert_eq!(sinks.len(), 1, "one watcher, one listen stream");
        for _ in 0..3 {
            sinks[0].notify_tool_list_changed().await.unwrap();
        }
        wait_for("the new tool to be recorded", async || {
            tool_names(&app.get("/api/v1/servers/changing/tools").await.body)
                == ["exfiltrate", "lookup"]
        })
        .await;
        let view = app.get("/api/v1/servers/changing").await.body;
        assert_eq!(
            view["tools_status"], "changed_needs_review",
            "{backend:?}: {view}"
        );
        // Debounced: the burst caused one discovery (one tools/list), recorded by the system
        // as a change of approved tools.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            changing.lock().unwrap().lists,
            lists_before + 1,
            "{backend:?}"
        );
        let audits = app
            .audit("resource_id=changing&action=server.tools_changed")
            .await;
        assert_eq!(audits.len(), 1, "{backend:?}: {audits:?}");
        assert_eq!(audits[0]["actor"], "system:tool-discovery");

        // Disabling the server stops its watcher (the server sees its stream end).
        let r = app
            .post("/api/v1/servers/changing/toggle", json!({"enabled": false}))
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        wait_for("the watcher to stop", async || {
            watchers.state(&changing_path).is_none()
        })
        .await;
        app.running.stop().await;
    }
}

#[tokio::test]
async fn watchers_are_capped_and_the_cap_is_checked() {
    let err =
        registry::config::RegistryConfig::from_toml("[health]\nlist_changed_watchers = 10001")
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("health.list_changed_watchers")
            && err.contains("MCPGW_REGISTRY_HEALTH__LIST_CHANGED_WATCHERS")
            && err.contains("at most 10000"),
        "{err}"
    );
    let app = spawn_with(
        Backend::Sqlite,
        "[health]\ninterval_seconds = 5\nlist_changed_watchers = 1\n",
    )
    .await;
    let watchers = &app.running.state.health.watchers;
    let mut paths = Vec::new();
    for name in ["one", "two"] {
        let url = start(true, Arc::new(Mutex::new(Shared::default()))).await;
        app.register(body(name, &url)).await;
        paths.push(ServerPath::parse(name).unwrap());
    }
    wait_for("both servers to be healthy", async || {
        let mut healthy = 0;
        for name in ["one", "two"] {
            let view = app.get(&format!("/api/v1/servers/{name}")).await.body;
            healthy += usize::from(view["health"]["status"] == "healthy");
        }
        healthy == 2
    })
    .await;
    wait_for("one watcher to listen", async || {
        paths
            .iter()
            .any(|p| watchers.state(p) == Some(WatchState::Listening))
    })
    .await;
    // A full pass (every 10 s) does not start a second one either.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let states: Vec<_> = paths.iter().map(|p| watchers.state(p)).collect();
    assert_eq!(
        states.iter().filter(|s| s.is_some()).count(),
        1,
        "{states:?}"
    );
    app.running.stop().await;
}
