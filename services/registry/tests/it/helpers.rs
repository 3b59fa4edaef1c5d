//! Spawning the registry for a test, and small HTTP helpers.

use std::time::Duration;

use registry::app::{self, Running};
use registry::config::RegistryConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mongo,
}

/// The MongoDB the test run started. `scripts/test.sh` (`make test`) starts one and sets
/// MCPGW_TEST_MONGODB_URL; running `cargo test` alone needs it set by hand.
pub fn mongo_url() -> String {
    std::env::var("MCPGW_TEST_MONGODB_URL").unwrap_or_else(|_| {
        panic!(
            "MCPGW_TEST_MONGODB_URL is not set: run the suite with `make test`, or start MongoDB with \
             `scripts/deps/mongodb.sh start` and export its URL"
        )
    })
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Config TOML for a backend; every test gets its own database.
pub fn backend_toml(backend: Backend, dir: &TempDir) -> String {
    let data_dir = dir.path().display();
    let store = match backend {
        Backend::Sqlite => format!("url = \"sqlite://{data_dir}/registry.db\""),
        Backend::Mongo => format!(
            "url = \"{}\"\nmongo_database = \"{}\"",
            mongo_url(),
            unique_name("it")
        ),
    };
    // A shared store needs a configured sealing key; the embedded default makes its own.
    let secrets = match backend {
        Backend::Sqlite => String::new(),
        Backend::Mongo => format!(
            "[secrets.sealing_key]\nvalue = \"{}\"\n",
            secrecy::ExposeSecret::expose_secret(&mcpgw_core::secrets::Keyring::generate_base64())
        ),
    };
    format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{data_dir}\"\n\
         [store]\n{store}\n[egress]\nallow_loopback = true\n{secrets}\n\
         [mcp]\nregister = false\n"
    )
}

pub struct TestApp {
    pub base: String,
    pub metrics: String,
    pub key: String,
    pub client: reqwest::Client,
    pub running: Running,
    pub dir: TempDir,
}

/// Starts the registry with extra TOML appended to the backend's settings.
pub async fn spawn_with(backend: Backend, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = backend_toml(backend, &dir);
    let config = RegistryConfig::from_toml_layers(&[&base, extra]).expect("test config is valid");
    let running = app::start(config).await.expect("registry starts");
    let key = running
        .bootstrap_key
        .clone()
        .expect("first start creates the admin key");
    TestApp {
        base: format!("http://{}", running.addr),
        metrics: format!("http://{}", running.metrics_addr),
        key,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        running,
        dir,
    }
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, "").await
}

/// A minimal valid registration body.
pub fn server_body(path: &str) -> Value {
    json!({
        "path": path,
        "name": format!("Server {path}"),
        "description": "Looks things up",
        "tags": ["search"],
        "endpoint": {"transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
        "governance": {"owner_team": "platform"}
    })
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn call_as(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the registry");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(&self.key), method, path, body, &[]).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Registers a server and asserts it worked.
    pub async fn register(&self, body: Value) -> Value {
        let r = self.post("/api/v1/servers", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    pub async fn transition(&self, path: &str, to: &str) -> Reply {
        self.post(
            &format!("/api/v1/servers/{path}/lifecycle"),
            json!({"to": to, "reason": "test"}),
        )
        .await
    }

    /// Moves a server from draft along the chain up to `to`.
    pub async fn advance(&self, path: &str, to: &str) {
        for state in [
            "submitted",
            "security_review",
            "approved_dev",
            "approved_prod",
            "deprecated",
            "retired",
        ] {
            let r = self.transition(path, state).await;
            assert_eq!(r.status, StatusCode::OK, "{state}: {:?}", r.body);
            if state == to {
                return;
            }
        }
        panic!("{to} is not on the lifecycle chain");
    }

    /// Mints a key with the given permissions and returns it.
    pub async fn key_with(&self, permissions: &[&str]) -> String {
        let r = self
            .post(
                "/api/v1/api-keys",
                json!({"name": "test", "permissions": permissions}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// All audit records (newest first).
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/audit?limit=500&{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }
}

/// Instantiates each behaviour test once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await })*
        }
        mod mongodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Mongo).await })*
        }
    };
}

/// The real `registry` binary as a child process, configured through environment variables.
pub struct Process {
    pub child: tokio::process::Child,
    pub base: String,
    pub stderr_path: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    /// Environment for a process on `backend` with its state in `dir`.
    pub fn env_for(backend: Backend, dir: &std::path::Path) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "MCPGW_REGISTRY_LISTEN".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "MCPGW_REGISTRY_METRICS_LISTEN".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "MCPGW_REGISTRY_DATA_DIR".to_owned(),
                dir.display().to_string(),
            ),
            (
                "MCPGW_REGISTRY_EGRESS__ALLOW_LOOPBACK".to_owned(),
                "true".to_owned(),
            ),
            (
                "MCPGW_REGISTRY_BOOTSTRAP__ADMIN_KEY_FILE".to_owned(),
                dir.join("admin.key").display().to_string(),
            ),
            ("MCPGW_REGISTRY_LOG__FILTER".to_owned(), "warn".to_owned()),
        ];
        match backend {
            Backend::Sqlite => env.push((
                "MCPGW_REGISTRY_STORE__URL".to_owned(),
                format!("sqlite://{}/registry.db", dir.display()),
            )),
            Backend::Mongo => {
                env.push(("MCPGW_REGISTRY_STORE__URL".to_owned(), mongo_url()));
                env.push((
                    "MCPGW_REGISTRY_STORE__MONGO_DATABASE".to_owned(),
                    unique_name("kill"),
                ));
                let key = mcpgw_core::secrets::Keyring::generate_base64();
                env.push((
                    "MCPGW_REGISTRY_SECRETS__SEALING_KEY__VALUE".to_owned(),
                    secrecy::ExposeSecret::expose_secret(&key).to_owned(),
                ));
            }
        }
        env
    }

    /// Starts the binary; does not wait for it to be ready.
    pub fn start(env: Vec<(String, String)>, dir: &std::path::Path) -> Self {
        let listen = env
            .iter()
            .find(|(k, _)| k == "MCPGW_REGISTRY_LISTEN")
            .map(|(_, v)| v.clone())
            .unwrap();
        let stderr_path = dir.join(format!("stderr-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("the registry binary starts");
        Process {
            child,
            base: format!("http://{listen}"),
            stderr_path,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until /health answers, or panics with the process's stderr.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the registry exited with {status}: {}", self.stderr());
            }
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the registry did not become ready in 30 s: {}",
            self.stderr()
        );
    }

    /// Waits for the process to exit by itself (bounded) and returns its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!("the registry did not exit: {}", self.stderr()),
        }
    }

    /// SIGKILL: no shutdown hook runs.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}
