//! Spawning the auth-server for a test, a small cookie-keeping browser, and the PostgreSQL
//! database of each test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_server::app::{self, Running};
use auth_server::config::AuthConfig;
use auth_server::store::{AuditRecord, AuthStore, UserRecord};
use mcpgw_core::time::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A database of one test on the shared test server (dropped when the test ends).
pub type TestDatabase = mcpgw_test_support::PgTestDatabase;

/// Creates this suite's databases (`auth_it_…`).
pub async fn test_database() -> TestDatabase {
    TestDatabase::create("auth_it_").await
}

/// Settings every test starts from: loopback ports, cheap password hashing, no `Secure`.
/// With PostgreSQL, the returned guard owns the test's database.
pub async fn backend_toml(backend: Backend, dir: &TempDir) -> (String, Option<TestDatabase>) {
    let data_dir = dir.path().display();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(test_database().await),
    };
    let store = match &db {
        None => format!("url = \"sqlite://{data_dir}/auth.db\""),
        Some(db) => format!("url = \"{}\"", db.url),
    };
    let secrets = match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => format!(
            "[secrets.sealing_key]\nvalue = \"{}\"\n",
            mcpgw_core::secrets::Keyring::generate_base64().expose_secret()
        ),
    };
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = \"{data_dir}\"\n\
         [store]\n{store}\n\
         [session]\ncookie_secure = false\n\
         [local.password_hash]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n\
         {secrets}"
    );
    (toml, db)
}

pub struct TestApp {
    pub base: String,
    pub metrics: String,
    pub admin_password: String,
    pub running: Running,
    pub dir: TempDir,
    /// Dropped after the service (fields drop in order).
    pub db: Option<TestDatabase>,
}

/// Starts the auth-server with extra TOML layered over the backend's settings.
pub async fn spawn_with(backend: Backend, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (base, db) = backend_toml(backend, &dir).await;
    let mut app = spawn_in(dir, &base, extra).await;
    app.db = db;
    app
}

/// Starts the auth-server with `base` and `extra` TOML, its state in `dir`.
pub async fn spawn_in(dir: TempDir, base: &str, extra: &str) -> TestApp {
    let config = AuthConfig::from_toml_layers(&[base, extra]).expect("test config is valid");
    let running = app::start(config).await.expect("auth-server starts");
    let admin_password = running
        .bootstrap_password
        .as_ref()
        .map(|p| p.expose_secret().to_owned())
        .unwrap_or_default();
    TestApp {
        base: format!("http://{}", running.addr),
        metrics: format!("http://{}", running.metrics_addr),
        admin_password,
        running,
        dir,
        db: None,
    }
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, "").await
}

impl TestApp {
    pub fn store(&self) -> Arc<dyn AuthStore> {
        self.running.state.store.clone()
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser whose requests come through one proxy that reports `address` as the client
    /// (`X-Forwarded-For`; the server must be configured with `login.trusted_proxy_hops = 1`).
    pub fn browser_at(&self, address: &str) -> Browser {
        Browser::behind_proxy(&self.base, address)
    }

    /// A browser signed in as the bootstrap administrator.
    pub async fn admin(&self) -> Browser {
        let b = self.browser();
        let r = b.login("admin", &self.admin_password).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        b
    }

    /// Creates a local user directly in the store.
    pub async fn add_user(&self, username: &str, password: &str, groups: &[&str], disabled: bool) {
        let hash = self
            .running
            .state
            .passwords
            .as_ref()
            .expect("local users are enabled")
            .hash(SecretString::from(password.to_owned()))
            .await
            .unwrap();
        let now = Timestamp::now();
        let user = UserRecord {
            username: username.to_owned(),
            password_hash: hash,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            disabled,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditRecord::new(
            "test",
            None,
            "user.create",
            "user",
            username,
            serde_json::json!({}),
        );
        self.store().insert_user(&user, &audit).await.unwrap();
    }

    /// A browser signed in as a new user with `groups`.
    pub async fn user(&self, username: &str, groups: &[&str]) -> Browser {
        self.add_user(username, "user-password-1", groups, false)
            .await;
        let b = self.browser();
        let r = b.login(username, "user-password-1").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
        b
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }
}

/// A browser: keeps cookies set by the server, follows no redirects.
#[derive(Clone)]
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    pub cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

pub async fn reply_of(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::with_headers(base, reqwest::header::HeaderMap::new())
    }

    /// Every request carries `X-Forwarded-For: <address>`, as a proxy in front would add.
    pub fn behind_proxy(base: &str, address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        Self::with_headers(base, headers)
    }

    fn with_headers(base: &str, headers: reqwest::header::HeaderMap) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .default_headers(headers)
                .build()
                .unwrap(),
            cookies: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep(&self, reply: &Reply) {
        let mut jar = self.cookies.lock().unwrap();
        for c in reply.set_cookies() {
            let pair = c.split(';').next().unwrap_or("");
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if v.is_empty() || c.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let req = match self.cookie_header() {
            Some(c) => req.header(reqwest::header::COOKIE, c),
            None => req,
        };
        let reply = reply_of(req.send().await.expect("request reaches the auth-server")).await;
        self.keep(&reply);
        reply
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            self.request(Method::POST, path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// A JSON API call with the session's CSRF token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let csrf = self.csrf().await;
        self.api_with(method, path, body, Some(&csrf)).await
    }

    /// A JSON API call with the given CSRF header (or none).
    pub async fn api_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> Reply {
        let mut req = self.request(method, path);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn csrf(&self) -> String {
        let r = self.get("/api/v1/csrf").await;
        r.body["csrf_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Opens the login form and submits it.
    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.login_returning(username, password, None).await
    }

    pub async fn login_returning(
        &self,
        username: &str,
        password: &str,
        return_to: Option<&str>,
    ) -> Reply {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let token = hidden_field(&form.text, "form_token").expect("the form has a form_token");
        let mut fields = vec![
            ("username", username),
            ("password", password),
            ("form_token", token.as_str()),
        ];
        if let Some(r) = return_to {
            fields.push(("return_to", r));
        }
        self.post_form("/login", &fields).await
    }

    /// Mints a token and returns the reply.
    pub async fn mint(&self, body: Value) -> Reply {
        self.api(Method::POST, "/api/v1/tokens", Some(body)).await
    }
}

/// The value of a hidden input in an HTML page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

/// Instantiates each behaviour test once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::helpers::Backend::Postgres).await })*
        }
    };
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}
