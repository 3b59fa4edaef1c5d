//! Step 10: the deployment works end to end for a machine: a client-credentials token from
//! the realm, then `initialize` and `tools/list` at the gateway's aggregated endpoint.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::error::{Result, SetupError, error_chain};
use crate::keycloak::join;
use crate::spec::Spec;
use crate::{Context, Outcome};

/// The protocol version the check speaks (the session era; every gateway serves it).
const PROTOCOL_VERSION: &str = "2025-11-25";

pub async fn run(ctx: &mut Context) -> Result<Outcome> {
    if ctx.dry_run {
        return Ok(Outcome::skipped(
            "not run in a dry run (it needs the changes made)",
        ));
    }
    let client_id = ctx
        .spec
        .validate
        .as_ref()
        .map(|v| v.client_id.clone())
        .ok_or_else(|| SetupError::internal("[validate] was checked by the inputs step"))?;
    let (Some(keycloak), Some(gateway)) = (&ctx.inputs.keycloak_url, &ctx.inputs.gateway_url)
    else {
        return Err(SetupError::internal("URLs were checked by the inputs step"));
    };
    // The gateway may still be starting (it waits for the key the gateway-key step stores):
    // wait for its health endpoint first, bounded like the endpoints step.
    let health = join(gateway, "health");
    let http = ctx.http.clone();
    crate::wait::until(
        &ctx.out,
        &format!("the gateway at {health}"),
        ctx.inputs.wait_endpoints,
        std::time::Duration::from_secs(2),
        || {
            let (http, health) = (http.clone(), health.clone());
            async move {
                match http.get(health.clone()).send().await {
                    Ok(r) if r.status().is_success() => crate::wait::Attempt::Ready(()),
                    Ok(r) => crate::wait::Attempt::NotYet(format!("{health} answers {}", r.status())),
                    Err(e) => crate::wait::Attempt::NotYet(error_chain(&e)),
                }
            }
        },
    )
    .await
    .map_err(|e| {
        SetupError::validation(e.message)
            .with_hint("check the gateway's log; it needs its registry key (the gateway-key step) and the registry")
    })?;

    let secret_id = Spec::client_secret_id(&ctx.inputs.secret_prefix, &client_id);
    let secret = ctx.secrets.get(&secret_id).await?.ok_or_else(|| {
        SetupError::validation(format!(
            "the secret of client {client_id} ({secret_id}) does not exist"
        ))
        .with_hint("run the secrets and realm steps first")
    })?;

    let token_url = join(
        keycloak,
        &format!(
            "realms/{}/protocol/openid-connect/token",
            ctx.spec.realm.name
        ),
    );
    let response = ctx
        .http
        .post(token_url.clone())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose_secret()),
        ])
        .send()
        .await
        .map_err(|e| SetupError::from_http(&format!("token request to {token_url}"), &e))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let token = body["access_token"].as_str().ok_or_else(|| {
        SetupError::validation(format!(
            "Keycloak gave {client_id} no token ({status}): {}",
            body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no reason given")
        ))
        .with_hint("run the realm step again; it repairs the client and its secret")
    })?;

    let endpoint = join(gateway, "mcp");
    let (init, session) = mcp(
        ctx,
        &endpoint,
        token,
        None,
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "mcpgw-setup", "version": env!("CARGO_PKG_VERSION")}}
        }),
    )
    .await?;
    let server = init["result"]["serverInfo"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    mcp(
        ctx,
        &endpoint,
        token,
        session.as_deref(),
        json!({
            "jsonrpc": "2.0", "method": "notifications/initialized"
        }),
    )
    .await?;
    let (list, _) = mcp(
        ctx,
        &endpoint,
        token,
        session.as_deref(),
        json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/list"
        }),
    )
    .await?;
    let tools: Vec<String> = list["result"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if tools.is_empty() {
        return Err(SetupError::validation(format!(
            "the gateway's aggregated endpoint {endpoint} listed no tools for {client_id}: {list}"
        )));
    }
    if let Some(sid) = &session {
        // Ending the session is a courtesy; a failure here does not fail the check.
        let _ = ctx
            .http
            .delete(endpoint.clone())
            .bearer_auth(token)
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .send()
            .await;
    }
    Ok(Outcome::note(format!(
        "token for {client_id}; {endpoint} ({server}) lists {} tools: {}",
        tools.len(),
        tools.join(", ")
    )))
}

/// Sends one JSON-RPC message; returns the response (JSON, or the first SSE `data:` event)
/// and the session id the gateway gave.
async fn mcp(
    ctx: &Context,
    endpoint: &url::Url,
    token: &str,
    session: Option<&str>,
    message: Value,
) -> Result<(Value, Option<String>)> {
    let mut request = ctx
        .http
        .post(endpoint.clone())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(sid) = session {
        request = request
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", PROTOCOL_VERSION);
    }
    let method = message["method"].as_str().unwrap_or("?").to_owned();
    let response = request.send().await.map_err(|e| {
        SetupError::validation(format!("{method} at {endpoint}: {}", error_chain(&e)))
    })?;
    let status = response.status();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(SetupError::validation(format!(
            "{method} at {endpoint} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        ))
        .with_hint(if status.as_u16() == 401 || status.as_u16() == 403 {
            "the gateway must trust the realm's issuer with the gateway's audience ([[auth.issuers]]), and the scopes step must have run"
        } else {
            "check the gateway's log for this request"
        }));
    }
    if message.get("id").is_none() {
        return Ok((Value::Null, session));
    }
    let json_text = if text.trim_start().starts_with('{') {
        text.clone()
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .find(|d| d.starts_with('{'))
            .unwrap_or_default()
            .to_owned()
    };
    let value: Value = serde_json::from_str(&json_text).map_err(|_| {
        SetupError::validation(format!(
            "{method} at {endpoint} answered something that is not JSON-RPC: {}",
            text.chars().take(300).collect::<String>()
        ))
    })?;
    if let Some(error) = value.get("error") {
        return Err(SetupError::validation(format!(
            "{method} at {endpoint} failed: {error}"
        )));
    }
    Ok((value, session))
}
