//! The local identity provider: bootstrap administrator, the login form, sessions, logout.

use auth_server::session::{PLAIN_COOKIE, SECURE_COOKIE, hash_id};
use auth_server::store::{AuditFilter, AuditRecord, SessionRecord};
use chrono::Duration;
use mcpgw_core::time::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Browser, backend_toml, hidden_field, spawn, spawn_in, spawn_with};

both_backends!(
    the_bootstrap_admin_is_created_once_and_written_to_its_file,
    a_login_sets_a_session_cookie_and_me_answers_who_it_is,
    a_wrong_password_an_unknown_user_and_a_disabled_user_get_the_same_answer,
    failures_from_one_address_never_keep_the_right_password_out_from_another,
    an_address_past_its_failures_waits_longer_each_time_then_signs_in,
    an_account_guessed_from_many_addresses_slows_new_addresses_but_locks_none,
    a_client_sent_x_forwarded_for_is_ignored_unless_a_proxy_is_trusted,
    failures_from_one_client_are_limited_across_usernames,
    a_login_rotates_the_session_id_and_the_old_one_stops_working,
    logout_needs_the_csrf_token_and_ends_the_session,
    the_login_form_refuses_a_post_without_its_form_token,
    return_to_accepts_own_paths_and_allowed_origins_only,
    an_ended_or_idle_session_is_refused_and_deleted,
    secure_cookies_use_the_host_prefix,
);

async fn the_bootstrap_admin_is_created_once_and_written_to_its_file(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (base, _db) = backend_toml(backend, &dir).await;
    let file = dir.path().join("secrets/admin.password");
    let extra = format!(
        "[local]\nbootstrap_password_file = \"{}\"\n",
        file.display()
    );
    let app = spawn_in(dir, &base, &extra).await;
    assert_eq!(app.admin_password.len(), 24);
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert_eq!(on_disk.trim(), app.admin_password);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!file.with_extension("password.pending").exists());
    let user = app.store().get_user("admin").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains(&app.admin_password));
    assert_eq!(user.groups, vec!["mcpgw-admins"]);
    let created = app
        .store()
        .list_audit(
            &AuditFilter {
                action: Some("user.create".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor, "system:bootstrap");

    // A second start on the same database creates nothing and prints nothing.
    let TestParts { dir, running } = TestParts::from(app);
    running.stop().await;
    let again = spawn_in(dir, &base, &extra).await;
    assert!(again.running.bootstrap_password.is_none());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        on_disk.trim(),
        "the file is left as it was"
    );
    let b = again.browser();
    let r = b.login("admin", on_disk.trim()).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the first password still works"
    );
}

struct TestParts {
    dir: tempfile::TempDir,
    running: auth_server::app::Running,
}

impl From<crate::helpers::TestApp> for TestParts {
    fn from(app: crate::helpers::TestApp) -> Self {
        TestParts {
            dir: app.dir,
            running: app.running,
        }
    }
}

async fn a_login_sets_a_session_cookie_and_me_answers_who_it_is(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.browser();
    let form = b.get("/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.header("cache-control").as_deref(), Some("no-store"));
    assert!(
        form.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(form.header("x-frame-options").as_deref(), Some("DENY"));
    let r = b.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some("/"));
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{PLAIN_COOKIE}=")))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let id = b.cookie(PLAIN_COOKIE).unwrap();
    assert_eq!(id.len(), 43);
    // Only the hash is stored.
    let stored = app
        .store()
        .get_session(&hash_id(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.subject, "local:admin");

    let me = b.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["subject"], "local:admin");
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["provider"], "local");
    assert_eq!(me.body["admin"], true);
    assert_eq!(me.body["groups"], json!(["mcpgw-admins"]));
    assert_eq!(
        me.body["scopes"],
        json!([
            "mcp-registry-admin",
            "mcp-servers-unrestricted/execute",
            "mcp-servers-unrestricted/read"
        ])
    );
    assert_eq!(me.body["csrf_token"], json!(b.csrf().await));
    let home = b.get("/").await;
    assert!(
        home.text.contains("id=\"username\">admin<"),
        "{}",
        home.text
    );
    let audit = audited(&app, "login.success").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "local:admin");
    assert!(
        !serde_json::to_string(&audit[0]).unwrap().contains(&id),
        "the audit never holds the session id"
    );
}

async fn a_wrong_password_an_unknown_user_and_a_disabled_user_get_the_same_answer(
    backend: Backend,
) {
    let app = spawn(backend).await;
    app.add_user("dora", "dora-password-1", &["team"], true)
        .await;
    let b = app.browser();
    let mut answers = Vec::new();
    for (user, pw) in [
        ("admin", "wrong-password"),
        ("nobody", "whatever"),
        ("dora", "dora-password-1"),
        ("Not A Name!", "x"),
        ("admin", &"p".repeat(5000)),
    ] {
        let r = b.login(user, pw).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(b.cookie(PLAIN_COOKIE).is_none(), "no session for {user}");
        let error = r
            .text
            .split("id=\"error\"")
            .nth(1)
            .unwrap_or("")
            .split('<')
            .next();
        answers.push(error.map(str::to_owned));
        if pw.len() > 8 {
            assert!(!r.text.contains(pw), "the password is not echoed");
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(
        answers[0]
            .as_deref()
            .unwrap()
            .contains("Invalid username or password")
    );
    let failures = audited(&app, "login.failure").await;
    assert_eq!(failures.len(), 5);
    assert!(audited(&app, "login.success").await.is_empty());
}

/// The newest audit records of one action (at most 10).
async fn audited(app: &crate::helpers::TestApp, action: &str) -> Vec<AuditRecord> {
    app.store()
        .list_audit(
            &AuditFilter {
                action: Some(action.into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap()
}

/// The `Retry-After` of a 429 login answer, in seconds.
fn retry_after(r: &crate::helpers::Reply) -> u64 {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    r.header("retry-after").unwrap().parse().unwrap()
}

async fn failures_from_one_address_never_keep_the_right_password_out_from_another(
    backend: Backend,
) {
    // The defaults but for the proxy, so each browser has its own address.
    let app = spawn_with(backend, "[login]\ntrusted_proxy_hops = 1\n").await;
    let attacker = app.browser_at("198.51.100.7");
    for _ in 0..5 {
        let r = attacker.login("admin", "wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    assert!(retry_after(&attacker.login("admin", "wrong").await) >= 1);
    let admin = app.browser_at("203.0.113.9");
    let r = admin.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(admin.cookie(PLAIN_COOKIE).is_some());
    // The attacker's address is still backing off, also with the right password.
    let r = attacker.login("admin", &app.admin_password).await;
    assert!(retry_after(&r) >= 1);
    assert!(attacker.cookie(PLAIN_COOKIE).is_none());
}

async fn an_address_past_its_failures_waits_longer_each_time_then_signs_in(backend: Backend) {
    let app = spawn_with(
        backend,
        "[login]\nmax_failures_per_pair = 2\ntrusted_proxy_hops = 1\n",
    )
    .await;
    let b = app.browser_at("198.51.100.20");
    for _ in 0..2 {
        assert_eq!(
            b.login("admin", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Refused before the password is looked at, the right one too.
    let first = retry_after(&b.login("admin", &app.admin_password).await);
    assert_eq!(first, 1);
    tokio::time::sleep(std::time::Duration::from_millis(first * 1000 + 100)).await;
    assert_eq!(
        b.login("admin", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    let second = retry_after(&b.login("admin", &app.admin_password).await);
    assert_eq!(second, 2, "the wait doubles with each failure");
    // Another username from the same address is not held back by this pair.
    app.add_user("erin", "erin-password-1", &[], false).await;
    let erin = app.browser_at("198.51.100.20");
    assert_eq!(
        erin.login("erin", "erin-password-1").await.status,
        StatusCode::SEE_OTHER
    );
    tokio::time::sleep(std::time::Duration::from_millis(second * 1000 + 100)).await;
    let r = b.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    // Signing in forgave the pair: it has its allowance again.
    let again = app.browser_at("198.51.100.20");
    assert_eq!(
        again.login("admin", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn an_account_guessed_from_many_addresses_slows_new_addresses_but_locks_none(
    backend: Backend,
) {
    let app = spawn_with(
        backend,
        "[login]\nmax_failures_per_user = 3\ntrusted_proxy_hops = 1\n",
    )
    .await;
    for i in 1..=3 {
        let r = app
            .browser_at(&format!("198.51.100.{i}"))
            .login("admin", "wrong")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Under attack: a new address may still try, but backs off after its first failure.
    let guesser = app.browser_at("198.51.100.4");
    assert_eq!(
        guesser.login("admin", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(retry_after(&guesser.login("admin", "wrong").await), 1);
    // Nobody is locked out: the right password from an address without failures signs in.
    let admin = app.browser_at("203.0.113.50");
    let r = admin.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
}

async fn a_client_sent_x_forwarded_for_is_ignored_unless_a_proxy_is_trusted(backend: Backend) {
    // No trusted proxy (the default): every browser here is the same TCP peer, whatever
    // X-Forwarded-For it sends, so changing the header does not start a new pair.
    let app = spawn_with(backend, "[login]\nmax_failures_per_pair = 2\n").await;
    for address in ["198.51.100.30", "198.51.100.31"] {
        assert_eq!(
            app.browser_at(address).login("admin", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app
        .browser_at("198.51.100.32")
        .login("admin", &app.admin_password)
        .await;
    assert!(retry_after(&r) >= 1);
    let failures = audited(&app, "login.failure").await;
    assert!(
        failures.iter().all(|a| a.details["client"] == "127.0.0.1"),
        "{failures:?}"
    );
}

async fn failures_from_one_client_are_limited_across_usernames(backend: Backend) {
    let app = spawn_with(backend, "[login]\nmax_failures_per_client = 2\n").await;
    let b = app.browser();
    assert_eq!(b.login("u1", "x").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.login("u2", "x").await.status, StatusCode::UNAUTHORIZED);
    let r = b.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
}

async fn a_login_rotates_the_session_id_and_the_old_one_stops_working(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let first = b.cookie(PLAIN_COOKIE).unwrap();
    let old = Browser::new(&app.base);
    old.set_cookie(PLAIN_COOKIE, &first);
    assert_eq!(old.get("/api/v1/me").await.status, StatusCode::OK);
    // Logging in again in the same browser replaces the session.
    let r = b.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let second = b.cookie(PLAIN_COOKIE).unwrap();
    assert_ne!(first, second);
    assert_eq!(old.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.get("/api/v1/me").await.status, StatusCode::OK);
    // A planted (fixated) id is never adopted: login issues a fresh one.
    let planted = Browser::new(&app.base);
    planted.set_cookie(PLAIN_COOKIE, &"A".repeat(43));
    planted.login("admin", &app.admin_password).await;
    assert_ne!(planted.cookie(PLAIN_COOKIE).unwrap(), "A".repeat(43));
}

async fn logout_needs_the_csrf_token_and_ends_the_session(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.admin().await;
    let id = b.cookie(PLAIN_COOKIE).unwrap();
    let r = b.post_form("/logout", &[("csrf_token", "wrong")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "csrf_failed");
    assert_eq!(
        b.get("/api/v1/me").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let page = b.get("/logout").await;
    let token = hidden_field(&page.text, "csrf_token").unwrap();
    let r = b.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    assert!(b.cookie(PLAIN_COOKIE).is_none(), "the cookie is cleared");
    assert!(
        app.store()
            .get_session(&hash_id(&id))
            .await
            .unwrap()
            .is_none()
    );
    let again = Browser::new(&app.base);
    again.set_cookie(PLAIN_COOKIE, &id);
    assert_eq!(
        again.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    // An API client logs out with the header.
    let api = app.admin().await;
    let csrf = api.csrf().await;
    let r = api
        .send(
            api.request(Method::POST, "/logout")
                .header("x-csrf-token", csrf),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(api.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
}

async fn the_login_form_refuses_a_post_without_its_form_token(backend: Backend) {
    let app = spawn(backend).await;
    let b = app.browser();
    // A cross-site form post carries no form cookie.
    let r = b
        .post_form(
            "/login",
            &[
                ("username", "admin"),
                ("password", &app.admin_password),
                ("form_token", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(b.cookie(PLAIN_COOKIE).is_none());
    // Unknown fields, repeated fields and non-form bodies are refused too.
    let form = b.get("/login").await;
    let token = hidden_field(&form.text, "form_token").unwrap();
    let r = b
        .post_form(
            "/login",
            &[
                ("username", "admin"),
                ("password", &app.admin_password),
                ("form_token", &token),
                ("admin", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("unknown form field"), "{}", r.text);
    let r = b
        .send(
            b.request(Method::POST, "/login")
                .json(&json!({"username": "admin", "password": app.admin_password})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(b.cookie(PLAIN_COOKIE).is_none());
    assert!(
        app.store()
            .list_audit(&AuditFilter::default(), 100)
            .await
            .unwrap()
            .iter()
            .all(|a| a.action != "login.success")
    );
}

async fn return_to_accepts_own_paths_and_allowed_origins_only(backend: Backend) {
    let app = spawn_with(
        backend,
        "allowed_return_origins = [\"https://registry.example.com\"]\n",
    )
    .await;
    let b = app.browser();
    let r = b
        .login_returning("admin", &app.admin_password, Some("/api/v1/me?x=1"))
        .await;
    assert_eq!(r.header("location").as_deref(), Some("/api/v1/me?x=1"));
    let r = b
        .login_returning(
            "admin",
            &app.admin_password,
            Some("https://registry.example.com/console"),
        )
        .await;
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://registry.example.com/console")
    );
    for bad in [
        "https://evil.example.com/",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "https://registry.example.com.evil.com/",
    ] {
        let r = b.get(&format!("/login?return_to={}", urlencode(bad))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.text.contains("return_to"), "{}", r.text);
    }
    let r = b.get("/login?next=/x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn an_ended_or_idle_session_is_refused_and_deleted(backend: Backend) {
    let app = spawn(backend).await;
    let now = Timestamp::now();
    let make = |id: &str, expires: i64, seen: i64| SessionRecord {
        id_hash: hash_id(id),
        subject: "local:admin".into(),
        username: "admin".into(),
        provider: "local".into(),
        groups: vec!["mcpgw-admins".into()],
        scopes: vec![],
        csrf_token: "c".into(),
        id_token: None,
        created_at: now,
        expires_at: Timestamp::from_datetime(now.as_datetime() + Duration::seconds(expires)),
        last_seen_at: Timestamp::from_datetime(now.as_datetime() + Duration::seconds(seen)),
    };
    let ended = "E".repeat(43);
    let idle = "I".repeat(43);
    for s in [make(&ended, -1, 0), make(&idle, 3600, -3601)] {
        let audit = AuditRecord::new("test", None, "login.success", "session", "x", json!({}));
        app.store().insert_session(&s, None, &audit).await.unwrap();
    }
    for id in [&ended, &idle] {
        let b = Browser::new(&app.base);
        b.set_cookie(PLAIN_COOKIE, id);
        assert_eq!(b.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
        assert!(
            app.store()
                .get_session(&hash_id(id))
                .await
                .unwrap()
                .is_none()
        );
    }
}

async fn secure_cookies_use_the_host_prefix(backend: Backend) {
    let app = spawn_with(backend, "[session]\ncookie_secure = true\n").await;
    let b = app.browser();
    let r = b.login("admin", &app.admin_password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{SECURE_COOKIE}=")))
        .expect("a __Host- session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(b.get("/api/v1/me").await.status, StatusCode::OK);
    // The plain name means nothing when cookies are Secure.
    let plain = Browser::new(&app.base);
    plain.set_cookie(PLAIN_COOKIE, &b.cookie(SECURE_COOKIE).unwrap());
    assert_eq!(
        plain.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}
