//! The binary as operators run it: bad input gives a clear error, a distinct exit code and
//! changes nothing.

use std::process::{Command, Output};

use mcpgw_setup::keycloak::Admin;
use secrecy::SecretString;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_mcpgw-setup");

/// Runs the binary with `args`, with no MCPGW_SETUP_* variables of the caller's.
fn setup(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGW_SETUP_") {
            cmd.env_remove(k);
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("exited"), text)
}

async fn admin() -> Admin {
    Admin::sign_in(
        reqwest::Client::new(),
        &keycloak_url().parse().unwrap(),
        "admin",
        SecretString::from(keycloak_admin_password()),
    )
    .await
    .unwrap()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_missing_output_names_it_and_how_to_give_it() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write(
        dir.path(),
        "outputs.json",
        r#"{"environment": {"value": "dev", "type": "string", "sensitive": false},
            "auth_server_url": {"value": "https://auth.example.test", "type": "string", "sensitive": false}}"#,
    );
    let (code, text) = setup(
        &[
            "--terraform-outputs",
            &outputs,
            "--only",
            "realm",
            "--secrets-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("keycloak_url is missing"), "{text}");
    assert!(
        text.contains("--keycloak-url"),
        "the hint names the flag: {text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the outputs file"
    );
}

#[test]
fn malformed_terraform_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (content, expected) in [
        ("not json", "is not JSON"),
        (r#"["a"]"#, "is not a JSON object"),
        (r#"{"keycloak_url": "https://kc"}"#, "has no \"value\""),
        (
            r#"{"keycloak_url": {"value": ["https://kc"]}}"#,
            "must be a string",
        ),
        (
            r#"{"keycloak_url": {"value": "kc.example.com"}}"#,
            "is not a URL",
        ),
        (
            r#"{"environment": {"value": "qa"}}"#,
            "neither dev nor prod",
        ),
    ] {
        let outputs = write(dir.path(), "outputs.json", content);
        let (code, text) = setup(&["--terraform-outputs", &outputs, "--dry-run"], &[]);
        assert_eq!(code, 2, "{content}: {text}");
        assert!(
            text.contains(expected),
            "{content}: expected {expected:?} in {text}"
        );
    }
    let (code, text) = setup(&["--terraform-outputs", "/nonexistent/outputs.json"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("terraform output -json"), "{text}");
}

#[test]
fn malformed_specs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let base = mcpgw_setup::spec::DEFAULT_SPEC;
    for (spec, expected) in [
        ("[realm\nname = \"x\"".to_owned(), "is not valid"),
        (
            base.replacen("[realm]", "[realm]\ncolour = \"blue\"", 1),
            "unknown field `colour`",
        ),
        (
            base.replacen(
                "scopes = [\"mcp-registry-user\"",
                "scopes = [\"no-such-scope\"",
                1,
            ),
            "which is neither a scope document nor a client scope",
        ),
        (
            base.replacen(
                "service_account_groups = [\"mcp-servers-unrestricted\"]",
                "service_account_groups = [\"ghosts\"]",
                1,
            ),
            "group \"ghosts\", which is not declared",
        ),
        (
            base.replacen(
                "client_id = \"mcpgw-m2m\"\nkind",
                "client_id = \"mcpgw-web\"\nkind",
                1,
            ),
            "declared twice",
        ),
        (
            base.replace("${auth_server_url}", "${auth_url}"),
            "unknown placeholder ${auth_url}",
        ),
    ] {
        let path = write(dir.path(), "spec.toml", &spec);
        let (code, text) = setup(
            &[
                "--spec",
                &path,
                "--dry-run",
                "--auth-server-url",
                "https://auth.example.test",
            ],
            &[],
        );
        assert_eq!(code, 2, "{expected}: {text}");
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
}

#[test]
fn unknown_or_conflicting_steps_are_usage_errors() {
    let (code, text) = setup(&["--only", "realm,colour"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("no such step") && text.contains("documentdb"),
        "{text}"
    );
    let (code, text) = setup(&["--only", "realm", "--skip", "keycloak"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("--skip keycloak conflicts with the realm step"),
        "{text}"
    );
    let (code, text) = setup(&["--skip", "inputs"], &[]);
    assert_eq!(code, 2, "{text}");
}

#[tokio::test]
async fn a_wrong_admin_password_is_a_credentials_error_and_creates_nothing() {
    let realm = unique("setup-cli");
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.toml", &spec_for_realm(&realm));
    let secrets = dir.path().join("secrets");
    let (code, text) = setup(
        &[
            "--spec",
            &spec,
            "--only",
            "secrets,realm",
            "--environment",
            "dev",
            "--keycloak-url",
            &keycloak_url(),
            "--auth-server-url",
            "https://auth.example.test",
            "--secrets-dir",
            secrets.to_str().unwrap(),
        ],
        &[("MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD", "not-the-password")],
    );
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("refused the admin sign-in"), "{text}");
    assert!(
        !text.contains("not-the-password"),
        "the password is never printed: {text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(
        admin()
            .await
            .get(&format!("/{realm}"))
            .await
            .unwrap()
            .is_none(),
        "no realm"
    );
    assert!(!secrets.exists(), "no secret generated");
}

#[test]
fn an_unreachable_keycloak_is_reported_after_the_bounded_wait() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, text) = setup(
        &[
            "--only",
            "realm",
            "--keycloak-url",
            &format!("http://127.0.0.1:{port}"),
            "--auth-server-url",
            "https://auth.example.test",
            "--wait-keycloak",
            "3",
            "--secrets-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD", "x")],
    );
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("not ready after"), "{text}");
    assert!(
        text.contains("--wait-keycloak"),
        "the hint says how to wait longer: {text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "bounded"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no secret generated"
    );
}

#[test]
fn an_unresolvable_endpoint_is_waited_for_with_progress_then_reported() {
    let (code, text) = setup(
        &[
            "--only",
            "endpoints",
            "--gateway-url",
            "https://gateway.mcpgw-setup-test.invalid",
            "--wait-endpoints",
            "7",
        ],
        &[],
    );
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("does not resolve yet"), "{text}");
    assert!(
        text.contains("waiting for the endpoints"),
        "progress lines while waiting: {text}"
    );
}

#[tokio::test]
async fn a_run_killed_half_way_is_finished_by_the_next_run() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let realm = unique("setup-kill");
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.toml", &spec_for_realm(&realm));
    let secrets = dir.path().join("secrets");
    let args = [
        "--spec",
        &spec,
        "--only",
        "secrets,realm",
        "--environment",
        "dev",
        "--keycloak-url",
        &keycloak_url(),
        "--auth-server-url",
        "https://auth.example.test",
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ];
    // Killed while the realm step runs: after the secrets step has reported, a moment into
    // the realm's creation.
    let mut child = Command::new(BIN)
        .args(args)
        .env(
            "MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD",
            keycloak_admin_password(),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("] secrets ") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    let kc = admin().await;
    let partial = kc
        .get(&format!("/{realm}/clients?clientId=mcpgw-m2m"))
        .await
        .unwrap();

    let env = [(
        "MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD",
        keycloak_admin_password(),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, text) = setup(&args, &env);
    assert_eq!(code, 0, "the next run finishes the job:\n{text}");
    let (code, text) = setup(&args, &env);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("done: no changes"),
        "and the one after changes nothing:\n{text}"
    );
    // Whatever the first run had done, the realm is now complete.
    let clients = kc
        .get(&format!("/{realm}/clients?clientId=mcpgw-m2m"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        clients.as_array().map(Vec::len),
        Some(1),
        "before: {partial:?}"
    );
    let _ = kc.delete(&format!("/{realm}")).await;
}

/// Every Terraform output setup reads can also be given as a flag and an environment variable
/// (the ECS task of the setup image passes them as variables).
#[test]
fn every_output_has_a_flag_and_an_environment_variable() {
    let (code, help) = setup(&["--help"], &[]);
    assert_eq!(code, 0, "{help}");
    for name in mcpgw_setup::inputs::output::ALL {
        let flag = format!("--{}", name.replace('_', "-"));
        let var = format!("MCPGW_SETUP_{}", name.to_uppercase());
        assert!(help.contains(&flag), "no {flag} in --help");
        assert!(help.contains(&var), "no {var} in --help");
    }
}

#[test]
fn the_check_waits_for_the_gateway_then_says_it_never_came_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = setup(
        &[
            "--only",
            "validate",
            "--keycloak-url",
            "http://127.0.0.1:9",
            "--gateway-url",
            &format!("http://127.0.0.1:{port}"),
            "--wait-endpoints",
            "9",
            "--secrets-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 6, "an end-to-end failure: {text}");
    assert!(
        text.contains("the gateway at") && text.contains("not ready after"),
        "{text}"
    );
    assert!(
        text.contains("waiting for the gateway"),
        "progress while waiting: {text}"
    );
}
