//! Keycloak's admin REST API ([`Admin`]) and the realm reconciliation ([`realm`]).

pub mod realm;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Result, SetupError};

/// A signed-in admin session on the master realm (public client `admin-cli`). Admin tokens
/// are short-lived (60 s by default), so the session signs in again before one expires.
pub struct Admin {
    base: Url,
    http: reqwest::Client,
    username: String,
    password: SecretString,
    token: Mutex<(SecretString, Instant)>,
}

/// An admin API answer that was not a success.
fn refused(method: &Method, path: &str, status: StatusCode, body: &str) -> SetupError {
    let text = format!(
        "Keycloak refused {method} {path}: {status} {}",
        body.chars().take(500).collect::<String>()
    );
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SetupError::credentials(text)
            .with_hint("the Keycloak admin user needs the admin role of the master realm"),
        s if s.is_server_error() => SetupError::apply(text)
            .with_hint("Keycloak failed the request; its log says why. Running again is safe"),
        _ => SetupError::apply(text),
    }
}

impl Admin {
    /// Signs in as `username`; a refused password is a [`crate::error::FailureClass::Credentials`]
    /// error.
    pub async fn sign_in(
        http: reqwest::Client,
        base: &Url,
        username: &str,
        password: SecretString,
    ) -> Result<Self> {
        let base = base.clone();
        let token = Self::fetch_token(&http, &base, username, &password).await?;
        Ok(Self {
            base,
            http,
            username: username.to_owned(),
            password,
            token: Mutex::new(token),
        })
    }

    async fn fetch_token(
        http: &reqwest::Client,
        base: &Url,
        username: &str,
        password: &SecretString,
    ) -> Result<(SecretString, Instant)> {
        let url = join(base, "realms/master/protocol/openid-connect/token");
        let response = http
            .post(url.clone())
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", username),
                ("password", password.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| SetupError::from_http(&format!("signing in to Keycloak at {url}"), &e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            return Err(SetupError::credentials(format!(
                "Keycloak at {base} refused the admin sign-in of {username:?}: {}",
                body["error_description"].as_str().unwrap_or("invalid credentials")
            ))
            .with_hint("check the admin password (--keycloak-admin-password or the secret named by keycloak_admin_secret_id)"));
        }
        if !status.is_success() {
            return Err(SetupError::apply(format!(
                "Keycloak at {base} answered the admin sign-in with {status}: {body}"
            )));
        }
        let token = body["access_token"].as_str().ok_or_else(|| {
            SetupError::apply(format!(
                "Keycloak's token answer has no access_token: {body}"
            ))
        })?;
        let lifetime = body["expires_in"].as_u64().unwrap_or(60);
        // Renew when less than a third of the lifetime is left.
        let renew_at = Instant::now() + Duration::from_secs(lifetime * 2 / 3);
        Ok((SecretString::from(token.to_owned()), renew_at))
    }

    async fn token(&self) -> Result<SecretString> {
        let mut token = self.token.lock().await;
        if Instant::now() >= token.1 {
            *token =
                Self::fetch_token(&self.http, &self.base, &self.username, &self.password).await?;
        }
        Ok(token.0.clone())
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Sends `method` to `/admin/realms{path}`; returns the status, the `Location` header and
    /// the body (JSON, or null). Only transport failures are errors here.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<String>, Value)> {
        let url = join(&self.base, &format!("admin/realms{path}"));
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token().await?.expose_secret());
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SetupError::from_http(&format!("Keycloak {method} {path}"), &e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, location, value))
    }

    /// GET; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>> {
        let (status, _, body) = self.send(Method::GET, path, None).await?;
        match status {
            s if s.is_success() => Ok(Some(body)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(refused(&Method::GET, path, s, &body.to_string())),
        }
    }

    /// POST; returns the new object's id (the last segment of `Location`), if any.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Option<String>> {
        let (status, location, answer) = self.send(Method::POST, path, Some(body)).await?;
        if !status.is_success() {
            return Err(refused(&Method::POST, path, status, &answer.to_string()));
        }
        Ok(location_id(location))
    }

    /// POST that creates an object; a 409 Conflict (it exists already, e.g. another run made it
    /// meanwhile) is [`Created::Exists`] rather than an error, so the caller can read it back.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Created> {
        let (status, location, answer) = self.send(Method::POST, path, Some(body)).await?;
        if status == StatusCode::CONFLICT {
            return Ok(Created::Exists);
        }
        if !status.is_success() {
            return Err(refused(&Method::POST, path, status, &answer.to_string()));
        }
        Ok(Created::New(location_id(location)))
    }

    /// PUT (with or without a body).
    pub async fn put(&self, path: &str, body: Option<&Value>) -> Result<()> {
        let (status, _, answer) = self.send(Method::PUT, path, body).await?;
        if !status.is_success() {
            return Err(refused(&Method::PUT, path, status, &answer.to_string()));
        }
        Ok(())
    }

    /// PUT without a body that adds a link (a group membership, an attached client scope);
    /// `false` on 409 Conflict: the link is there already (added meanwhile by someone else).
    pub async fn link(&self, path: &str) -> Result<bool> {
        let (status, _, answer) = self.send(Method::PUT, path, None).await?;
        match status {
            StatusCode::CONFLICT => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(refused(&Method::PUT, path, s, &answer.to_string())),
        }
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        let (status, _, answer) = self.send(Method::DELETE, path, None).await?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            return Err(refused(&Method::DELETE, path, status, &answer.to_string()));
        }
        Ok(())
    }

    /// The server's version (from the admin API's server info).
    pub async fn version(&self) -> Result<String> {
        let url = join(&self.base, "admin/serverinfo");
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token().await?.expose_secret())
            .send()
            .await
            .map_err(|e| SetupError::from_http("Keycloak server info", &e))?;
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(body["systemInfo"]["version"]
            .as_str()
            .unwrap_or("unknown version")
            .to_owned())
    }
}

/// A new object's id: the last segment of the `Location` Keycloak answers a POST with.
fn location_id(location: Option<String>) -> Option<String> {
    location.and_then(|l| l.rsplit('/').next().map(str::to_owned))
}

/// What [`Admin::create`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created; its id (the last segment of `Location`) when Keycloak gave one.
    New(Option<String>),
    /// 409 Conflict: an object of that name exists already.
    Exists,
}

/// `base` + `path` (which may end in `?query`), keeping any path prefix of `base` (Keycloak
/// behind `/auth` or `/keycloak`).
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    // The query is set apart: `set_path` would percent-encode its `?`.
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_query(query);
    url
}
