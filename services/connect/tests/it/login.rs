//! `mcpgw-connect login`: discovery from the gateway's 401, dynamic client registration, the
//! browser step (headless Chromium), the token file; and what happens when the token goes
//! stale: refresh before expiry, a new sign-in when refresh fails.

use serde_json::{Value, json};

use crate::stack::{Stack, connect, stdio_client, token_file};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn login_signs_in_with_a_browser_and_keeps_the_token_in_a_file_only_the_user_may_read() {
    let stack = Stack::start("").await;
    let url = format!("{}/weather/mcp", stack.gateway);
    let state = stack.state_dir("login");
    let browser = stack.browser();
    let out = connect(&[
        "login",
        &url,
        "--browser",
        &browser,
        "--state-dir",
        state.to_str().unwrap(),
    ])
    .await;
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("signed in to"), "{said}");
    assert!(out.stdout.is_empty(), "stdout is for JSON-RPC only");

    let (path, entry) = token_file(&state);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state.join("tokens")), 0o700);
    }
    assert_eq!(entry["url"], url.as_str());
    assert_eq!(entry["resource"], url.as_str(), "{entry}");
    assert!(
        entry["client_id"].as_str().unwrap().starts_with("dcr."),
        "{entry}"
    );
    let token = entry["access_token"].as_str().unwrap();
    assert!(!said.contains(token), "the token was printed: {said}");

    // The sign-in URL shows no secret, and `--no-browser` only prints it: here nobody opens
    // it, so the login is abandoned (killed) once the URL is out.
    let mut child = tokio::process::Command::new(crate::stack::connect_bin())
        .args(["login", &url, "--no-browser", "--state-dir"])
        .arg(stack.state_dir("printed"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("the URL is printed")
        .unwrap()
        .unwrap();
    let printed = line
        .strip_prefix("mcpgw-connect: sign in at ")
        .expect(&line);
    let printed = url::Url::parse(printed).unwrap();
    let query: std::collections::HashMap<_, _> = printed.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["resource"], url);
    assert!(
        query["redirect_uri"].starts_with("http://127.0.0.1:"),
        "{query:?}"
    );
    assert!(!query.contains_key("code_verifier"));
}

/// Edits the saved entry of the one URL in `state`.
fn edit(state: &std::path::Path, change: impl FnOnce(&mut Value)) {
    let (path, mut entry) = token_file(state);
    change(&mut entry);
    std::fs::write(&path, entry.to_string()).unwrap();
}

#[tokio::test]
async fn a_stale_token_is_refreshed_and_a_refused_one_ends_in_a_new_sign_in() {
    let stack = Stack::start("").await;
    let url = format!("{}/weather/mcp", stack.gateway);
    let state = stack.state_dir("refresh");
    let state_arg = state.to_str().unwrap();
    let browser = stack.browser();
    let out = connect(&[
        "login",
        &url,
        "--browser",
        &browser,
        "--state-dir",
        state_arg,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, first) = token_file(&state);
    assert!(
        first["refresh_token"].is_string(),
        "the auth-server issues refresh tokens to registered clients: {first}"
    );

    // Expired by its clock: refreshed before use, with no browser (none is given).
    edit(&state, |e| e["expires_at"] = json!(0));
    let reply = stdio_client(
        &[&url, "--state-dir", state_arg, "--no-browser"],
        &["--timeout", "30"],
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let (_, refreshed) = token_file(&state);
    assert_ne!(refreshed["access_token"], first["access_token"]);
    assert_ne!(
        refreshed["refresh_token"], first["refresh_token"],
        "rotated"
    );
    assert_eq!(refreshed["client_id"], first["client_id"]);

    // A token the gateway refuses (401) and a refresh token the server refuses: the bridge
    // signs in again in the browser, and the client never notices.
    edit(&state, |e| {
        e["access_token"] = json!("not-a-token");
        e["refresh_token"] = json!("not-a-refresh-token");
    });
    let reply = stdio_client(
        &[&url, "--state-dir", state_arg, "--browser", &browser],
        &["--call", "echo", "--args", r#"{"text": "again"}"#],
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(
        reply["call"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("again"),
        "{reply}"
    );
    let said = reply["stderr"].as_str().unwrap();
    assert!(said.contains("could not be refreshed"), "{said}");
    let (_, signed_in) = token_file(&state);
    assert_ne!(signed_in["access_token"], "not-a-token");
    assert_eq!(
        signed_in["client_id"], first["client_id"],
        "the client is reused"
    );
}
