//! Tokens bound to a resource (RFC 8707): a token whose `aud` is the aggregated
//! `<public_url>/mcp` is taken on every route, one for `<public_url>/<server>/mcp` only on that
//! server's route; tokens for the configured audience keep working everywhere.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn for_audience(stack: &Stack, aud: &str) -> String {
    stack
        .issuer
        .sign(&stack.issuer.claims("alice", &["agents"], aud))
}

/// The status of an `initialize` at `path` (`mcp` or a server) with `token`, and its
/// challenge.
async fn initialize(stack: &Stack, path: &str, token: &str) -> (StatusCode, String) {
    let mut c = RawClient::new(&stack.url(), path, Some(token.to_owned()));
    c.url = format!("{}/{path}", stack.url()) + if path == "mcp" { "" } else { "/mcp" };
    let r = c.initialize_raw().await;
    if r.status == StatusCode::UNAUTHORIZED {
        // The body was not read: the client must not reuse the connection.
        assert_eq!(r.header("connection"), "close");
    }
    (r.status, r.header("www-authenticate").to_owned())
}

#[tokio::test]
async fn a_token_for_one_server_is_taken_on_its_route_only_and_one_for_mcp_everywhere() {
    let (stack, up) = stack_with("weather", false, &["echo"], json!({})).await;
    stack
        .register(
            "news",
            json!({"transport": "streamable-http", "url": up.url()}),
            json!({}),
        )
        .await;
    stack
        .put_scope(scope(
            "news-agents",
            "agents",
            "news",
            ALL_METHODS,
            &["echo"],
        ))
        .await;
    wait_routed(&stack.gateway, "news", true).await;
    wait_scope(&stack, "news-agents").await;
    let base = stack.gateway.state.public_base.clone();

    let weather_only = for_audience(&stack, &format!("{base}/weather/mcp"));
    assert_eq!(
        initialize(&stack, "weather", &weather_only).await.0,
        StatusCode::OK
    );
    for (path, metadata) in [
        (
            "news",
            format!("{base}/.well-known/oauth-protected-resource/news/mcp"),
        ),
        (
            "mcp",
            format!("{base}/.well-known/oauth-protected-resource/mcp"),
        ),
    ] {
        let (status, challenge) = initialize(&stack, path, &weather_only).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\"")
                && challenge.contains("not for this endpoint")
                && challenge.ends_with(&format!("resource_metadata=\"{metadata}\"")),
            "{path}: {challenge}"
        );
    }

    let aggregated = for_audience(&stack, &format!("{base}/mcp"));
    let configured = for_audience(&stack, AUDIENCE);
    for token in [&aggregated, &configured] {
        for path in ["weather", "news", "mcp"] {
            assert_eq!(
                initialize(&stack, path, token).await.0,
                StatusCode::OK,
                "{path}"
            );
        }
    }

    // Another gateway's resource URL, or a near miss of ours, is no audience of this one.
    for aud in [
        "https://other.example.com/weather/mcp".to_owned(),
        format!("{base}/weather/mcp/x"),
        base.clone(),
    ] {
        let token = for_audience(&stack, &aud);
        assert_eq!(
            initialize(&stack, "weather", &token).await.0,
            StatusCode::UNAUTHORIZED,
            "{aud}"
        );
    }
}
