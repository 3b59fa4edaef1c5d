//! The store's behaviour, the same on SQLite and PostgreSQL, through the trait.

use std::sync::Arc;

use auth_server::config::AuthConfig;
use auth_server::session::hash_id;
use auth_server::store::{
    self, AuditFilter, AuditRecord, AuthStore, Consent, Families, LoginFailures, MintLimit,
    MintOutcome, RefreshFamily, RegisteredClient, RegistrationLimits, SessionRecord,
    SigningKeyRecord, StoreError, UserRecord, VendedToken,
};
use chrono::Duration;
use mcpgw_core::secrets::Keyring;
use mcpgw_core::time::Timestamp;
use serde_json::json;
use tempfile::TempDir;

use crate::both_backends;
use crate::helpers::{Backend, TestDatabase, backend_toml};

both_backends!(
    users_are_unique_and_a_duplicate_changes_nothing,
    sessions_are_found_by_hash_and_revoked_per_user_or_all,
    a_new_session_replaces_the_one_it_names,
    expired_and_idle_sessions_are_pruned,
    the_mint_limit_holds_under_concurrent_mints,
    sign_in_tokens_skip_the_mint_limit_and_a_jti_is_recorded_once,
    revocations_list_only_revoked_tokens_that_have_not_expired,
    key_rotation_has_exactly_one_winner_and_retired_keys_leave,
    login_failures_are_counted_in_their_window_and_cleared,
    audit_records_list_newest_first_with_filters,
    a_refresh_token_rotates_once_and_ending_a_sign_in_revokes_its_access_tokens,
    sign_ins_end_with_their_client_or_consent_and_expire_when_idle_or_old,
);

/// The store, and what must outlive it (the data directory, the PostgreSQL database).
async fn open(backend: Backend) -> (Arc<dyn AuthStore>, (TempDir, Option<TestDatabase>)) {
    let dir = tempfile::tempdir().unwrap();
    let (toml, db) = backend_toml(backend, &dir).await;
    let config = AuthConfig::from_toml(&toml).unwrap();
    (
        store::open(&config).await.expect("the store opens"),
        (dir, db),
    )
}

fn audit(action: &str) -> AuditRecord {
    AuditRecord::new("test", Some("req-1"), action, "thing", "id", json!({}))
}

fn at(offset_seconds: i64) -> Timestamp {
    Timestamp::from_datetime(Timestamp::now().as_datetime() + Duration::seconds(offset_seconds))
}

fn session(subject: &str, username: &str, id: &str) -> SessionRecord {
    SessionRecord {
        id_hash: hash_id(id),
        subject: subject.to_owned(),
        username: username.to_owned(),
        provider: "local".to_owned(),
        groups: vec!["g".to_owned()],
        scopes: vec!["s1".to_owned(), "s2".to_owned()],
        csrf_token: "csrf".to_owned(),
        id_token: None,
        created_at: at(0),
        expires_at: at(3600),
        last_seen_at: at(0),
    }
}

fn token(subject: &str, issued: Timestamp, expires: Timestamp) -> VendedToken {
    VendedToken {
        jti: uuid::Uuid::new_v4().to_string(),
        subject: subject.to_owned(),
        username: subject.to_owned(),
        scopes: vec!["s1".to_owned()],
        audience: "mcp-gateway".to_owned(),
        description: Some("ci".to_owned()),
        issued_at: issued,
        expires_at: expires,
        revoked_at: None,
        client_id: None,
        refresh_family: None,
    }
}

async fn users_are_unique_and_a_duplicate_changes_nothing(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let user = UserRecord {
        username: "alice".into(),
        password_hash: "$argon2id$first".into(),
        groups: vec!["team".into()],
        disabled: false,
        created_at: at(0),
        updated_at: at(0),
    };
    store
        .insert_user(&user, &audit("user.create"))
        .await
        .unwrap();
    let again = UserRecord {
        password_hash: "$argon2id$second".into(),
        ..user.clone()
    };
    assert!(matches!(
        store.insert_user(&again, &audit("user.create")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_user("alice").await.unwrap().unwrap(), user);
    let creates = store
        .list_audit(
            &AuditFilter {
                action: Some("user.create".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(creates.len(), 1, "the refused insert wrote no audit record");
    store
        .set_password(
            "alice",
            "$argon2id$new",
            at(1),
            &audit("user.password_reset"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert!(matches!(
        store
            .set_password("nobody", "x", at(1), &audit("user.password_reset"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_user("nobody").await.unwrap().is_none());
}

async fn sessions_are_found_by_hash_and_revoked_per_user_or_all(backend: Backend) {
    let (store, _dir) = open(backend).await;
    for (subject, user, id) in [
        ("local:alice", "alice", "a1"),
        ("local:alice", "alice", "a2"),
        ("oidc:123", "bob", "b1"),
        ("local:carol", "carol", "c1"),
    ] {
        store
            .insert_session(&session(subject, user, id), None, &audit("login.success"))
            .await
            .unwrap();
    }
    let found = store.get_session(&hash_id("a1")).await.unwrap().unwrap();
    assert_eq!(
        found,
        session("local:alice", "alice", "a1").clone_with_times(&found)
    );
    assert!(
        store.get_session("a1").await.unwrap().is_none(),
        "ids are not stored in clear"
    );

    let n = store
        .delete_sessions(Some("local:alice"), &audit("sessions.revoke"))
        .await
        .unwrap();
    assert_eq!(n, 2);
    // By username too.
    let n = store
        .delete_sessions(Some("bob"), &audit("sessions.revoke"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(store.get_session(&hash_id("c1")).await.unwrap().is_some());
    let n = store
        .delete_sessions(None, &audit("sessions.revoke"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let revokes = store
        .list_audit(
            &AuditFilter {
                action: Some("sessions.revoke".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    let counts: Vec<_> = revokes.iter().map(|a| a.details["count"].clone()).collect();
    assert_eq!(counts, vec![json!(1), json!(1), json!(2)]);
    assert!(!store.delete_session(&hash_id("c1"), None).await.unwrap());
}

trait WithTimes {
    fn clone_with_times(&self, other: &SessionRecord) -> SessionRecord;
}

impl WithTimes for SessionRecord {
    /// This record with `other`'s instants (they are made at different moments).
    fn clone_with_times(&self, other: &SessionRecord) -> SessionRecord {
        SessionRecord {
            created_at: other.created_at,
            expires_at: other.expires_at,
            last_seen_at: other.last_seen_at,
            ..self.clone()
        }
    }
}

async fn a_new_session_replaces_the_one_it_names(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let old = session("local:alice", "alice", "old");
    store
        .insert_session(&old, None, &audit("login.success"))
        .await
        .unwrap();
    let new = session("local:alice", "alice", "new");
    store
        .insert_session(&new, Some(&old.id_hash), &audit("login.success"))
        .await
        .unwrap();
    assert!(store.get_session(&old.id_hash).await.unwrap().is_none());
    assert!(store.get_session(&new.id_hash).await.unwrap().is_some());
    let seen = at(30);
    store.touch_session(&new.id_hash, seen).await.unwrap();
    let touched = store.get_session(&new.id_hash).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, seen);
}

async fn expired_and_idle_sessions_are_pruned(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let live = session("local:a", "a", "live");
    let expired = SessionRecord {
        expires_at: at(-1),
        ..session("local:b", "b", "expired")
    };
    let idle = SessionRecord {
        last_seen_at: at(-7200),
        ..session("local:c", "c", "idle")
    };
    for s in [&live, &expired, &idle] {
        store
            .insert_session(s, None, &audit("login.success"))
            .await
            .unwrap();
    }
    let n = store
        .delete_expired_sessions(at(0), at(-3600))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(store.get_session(&live.id_hash).await.unwrap().is_some());
}

async fn sign_in_tokens_skip_the_mint_limit_and_a_jti_is_recorded_once(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let limit = MintLimit {
        max: 1,
        since: at(-3600),
    };
    let mut sign_in = token("local:alice", at(0), at(3600));
    sign_in.client_id = Some("registry-console".into());
    for _ in 0..3 {
        let mut t = sign_in.clone();
        t.jti = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            store
                .insert_vended_token(&t, None, &audit("oauth.token"))
                .await
                .unwrap(),
            MintOutcome::Recorded
        );
    }
    // Three sign-in tokens in the window, yet the first vended token is still allowed.
    let vended = token("local:alice", at(0), at(3600));
    assert_eq!(
        store
            .insert_vended_token(&vended, Some(limit), &audit("token.mint"))
            .await
            .unwrap(),
        MintOutcome::Recorded
    );
    let second = token("local:alice", at(0), at(3600));
    assert!(matches!(
        store
            .insert_vended_token(&second, Some(limit), &audit("token.mint"))
            .await
            .unwrap(),
        MintOutcome::Limited { .. }
    ));
    // The same jti twice: Conflict, and nothing of the second attempt is written.
    store
        .insert_vended_token(&sign_in, None, &audit("oauth.token"))
        .await
        .unwrap();
    let again = audit("oauth.token");
    assert!(matches!(
        store.insert_vended_token(&sign_in, None, &again).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = store.get_vended_token(&sign_in.jti).await.unwrap().unwrap();
    assert_eq!(stored.client_id.as_deref(), Some("registry-console"));
    let audits = store
        .list_audit(
            &AuditFilter {
                action: Some("oauth.token".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(audits.len(), 4, "the refused insert left no audit record");
    assert!(audits.iter().all(|a| a.id != again.id));
}

async fn the_mint_limit_holds_under_concurrent_mints(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let limit = MintLimit {
        max: 3,
        since: at(-3600),
    };
    // An old mint outside the window does not count.
    let old = token("local:alice", at(-7200), at(-3600));
    assert_eq!(
        store
            .insert_vended_token(&old, Some(limit), &audit("token.mint"))
            .await
            .unwrap(),
        MintOutcome::Recorded
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let t = token("local:alice", at(0), at(3600));
            store
                .insert_vended_token(&t, Some(limit), &audit("token.mint"))
                .await
                .unwrap()
        }));
    }
    let mut recorded = 0;
    let mut limited = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            MintOutcome::Recorded => recorded += 1,
            MintOutcome::Limited { oldest } => limited.push(oldest),
        }
    }
    assert_eq!(recorded, 3, "exactly the limit got through");
    assert_eq!(limited.len(), 5);
    assert!(
        limited.iter().all(|o| *o > at(-60)),
        "oldest is in the window"
    );
    // Another user is not affected, and refused mints left nothing behind.
    let bob = token("local:bob", at(0), at(3600));
    assert_eq!(
        store
            .insert_vended_token(&bob, Some(limit), &audit("token.mint"))
            .await
            .unwrap(),
        MintOutcome::Recorded
    );
    assert_eq!(
        store
            .list_vended_tokens("local:alice", 100)
            .await
            .unwrap()
            .len(),
        4
    );
    let mints = store
        .list_audit(
            &AuditFilter {
                action: Some("token.mint".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(mints.len(), 5, "one audit record per recorded mint");
    let listed = store.list_vended_tokens("local:bob", 10).await.unwrap();
    assert_eq!(listed, vec![bob]);
}

async fn revocations_list_only_revoked_tokens_that_have_not_expired(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let limit = MintLimit {
        max: 100,
        since: at(-3600),
    };
    let live = token("local:a", at(-10), at(3600));
    let expired = token("local:a", at(-7200), at(-10));
    let kept = token("local:a", at(-10), at(3600));
    for t in [&live, &expired, &kept] {
        store
            .insert_vended_token(t, Some(limit), &audit("token.mint"))
            .await
            .unwrap();
    }
    store
        .revoke_vended_token(&live.jti, at(0), &audit("token.revoke"))
        .await
        .unwrap();
    store
        .revoke_vended_token(&expired.jti, at(0), &audit("token.revoke"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_vended_token(&live.jti, at(1), &audit("token.revoke"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .revoke_vended_token("no-such", at(1), &audit("token.revoke"))
            .await,
        Err(StoreError::NotFound)
    ));
    let list = store.list_revocations(None, at(0)).await.unwrap();
    assert_eq!(
        list.iter().map(|t| &t.jti).collect::<Vec<_>>(),
        vec![&live.jti]
    );
    assert!(
        store
            .list_revocations(Some(at(60)), at(0))
            .await
            .unwrap()
            .is_empty()
    );
    let got = store.get_vended_token(&live.jti).await.unwrap().unwrap();
    assert!(got.revoked_at.is_some());
    assert!(
        store
            .get_vended_token(&kept.jti)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
}

async fn key_rotation_has_exactly_one_winner_and_retired_keys_leave(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let ring = Keyring::from_base64(&Keyring::generate_base64(), &[]).unwrap();
    let key = |generation: i64, kid: &str| SigningKeyRecord {
        kid: kid.to_owned(),
        generation,
        public_jwk: "{}".to_owned(),
        sealed_key: ring.seal(&format!("signing_key:{kid}"), "der"),
        created_at: at(0),
        retire_after: None,
    };
    store
        .insert_first_signing_key(&key(1, "k1"), &audit("signing_key.create"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_first_signing_key(&key(1, "k1b"), &audit("signing_key.create"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let store = store.clone();
        let k = key(2, &format!("k2-{i}"));
        tasks.push(tokio::spawn(async move {
            store
                .rotate_signing_key(&k, at(100), &audit("signing_key.rotate"))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    let current = store.current_signing_key().await.unwrap().unwrap();
    assert_eq!(current.generation, 2);
    assert_eq!(current.sealed_key.kid, ring.primary_kid());
    let published = store.published_signing_keys(at(0)).await.unwrap();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].kid, current.kid);
    assert_eq!(published[1].kid, "k1");
    assert!(published[1].retire_after.is_some());
    // After the old key's retirement time it is no longer published, then it is deleted.
    let later = store.published_signing_keys(at(101)).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(store.delete_retired_signing_keys(at(101)).await.unwrap(), 1);
    assert_eq!(store.published_signing_keys(at(0)).await.unwrap().len(), 1);
    let rotations = store
        .list_audit(
            &AuditFilter {
                action: Some("signing_key.rotate".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(rotations.len(), 1, "losing rotations wrote nothing");
}

async fn login_failures_are_counted_in_their_window_and_cleared(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let keys = ["user:alice".to_owned(), "client:10.0.0.1".to_owned()];
    store.record_login_failure(&keys, at(-1000)).await.unwrap();
    let first_in_window = at(-10);
    store
        .record_login_failure(&keys, first_in_window)
        .await
        .unwrap();
    let last = at(-5);
    store.record_login_failure(&keys[..1], last).await.unwrap();
    let alice = store.login_failures("user:alice", at(-100)).await.unwrap();
    assert_eq!(
        alice,
        LoginFailures {
            count: 2,
            oldest: Some(first_in_window),
            newest: Some(last)
        }
    );
    let client = store
        .login_failures("client:10.0.0.1", at(-100))
        .await
        .unwrap();
    assert_eq!((client.count, client.newest), (1, Some(first_in_window)));
    assert_eq!(
        store.login_failures("user:bob", at(-100)).await.unwrap(),
        LoginFailures::default()
    );
    store.clear_login_failures("user:alice").await.unwrap();
    assert_eq!(
        store
            .login_failures("user:alice", at(-2000))
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(store.prune_login_failures(at(-100)).await.unwrap(), 1);
    assert_eq!(
        store
            .login_failures("client:10.0.0.1", at(-2000))
            .await
            .unwrap()
            .count,
        1
    );
}

async fn audit_records_list_newest_first_with_filters(backend: Backend) {
    let (store, _dir) = open(backend).await;
    for (actor, action) in [("a", "x"), ("b", "x"), ("a", "y")] {
        let mut r = AuditRecord::new(actor, None, action, "t", "i", json!({"k": actor}));
        r.details["n"] = json!(1);
        store.insert_audit(&r).await.unwrap();
    }
    let all = store.list_audit(&AuditFilter::default(), 10).await.unwrap();
    let order: Vec<_> = all
        .iter()
        .map(|a| (a.actor.as_str(), a.action.as_str()))
        .collect();
    assert_eq!(order, vec![("a", "y"), ("b", "x"), ("a", "x")]);
    assert_eq!(all[0].details, json!({"k": "a", "n": 1}));
    assert_eq!(all[0].request_id, None);
    let by_a = store
        .list_audit(
            &AuditFilter {
                actor: Some("a".into()),
                action: Some("x".into()),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_a.len(), 1);
    assert_eq!(
        store
            .list_audit(&AuditFilter::default(), 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

fn family(id: &str, client_id: &str, subject: &str) -> RefreshFamily {
    RefreshFamily {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        subject: subject.to_owned(),
        username: subject.to_owned(),
        groups: vec!["g".to_owned()],
        scopes: vec!["s1".to_owned()],
        resource: "http://gw.test/mcp".to_owned(),
        session: Some(hash_id("session")),
        created_at: at(0),
        expires_at: at(86_400),
        last_used_at: at(0),
    }
}

/// A sign-in's access token, as `/oauth/token` records it.
fn family_token(f: &RefreshFamily, jti: &str, issued: i64) -> VendedToken {
    VendedToken {
        jti: jti.to_owned(),
        client_id: Some(f.client_id.clone()),
        refresh_family: Some(f.id.clone()),
        ..token(&f.subject, at(issued), at(3600))
    }
}

async fn a_refresh_token_rotates_once_and_ending_a_sign_in_revokes_its_access_tokens(
    backend: Backend,
) {
    let (store, _dir) = open(backend).await;
    let f = family(&uuid::Uuid::new_v4().to_string(), "dcr.a", "local:alice");
    let first = family_token(&f, &f.id, -2);
    store
        .insert_vended_token(&first, None, &audit("oauth.token"))
        .await
        .unwrap();
    store
        .insert_refresh_family(&f, &hash_id("rt-1"), &audit("oauth_refresh.start"))
        .await
        .unwrap();
    let found = store.get_refresh_token(&hash_id("rt-1")).await.unwrap();
    assert_eq!(found.as_ref().map(|r| &r.family), Some(&f));
    assert_eq!(found.unwrap().rotated_at, None);
    assert!(
        store
            .get_refresh_token(&hash_id("rt-x"))
            .await
            .unwrap()
            .is_none()
    );

    // Two rotations of one token at once: exactly one wins.
    let (old, a, b) = (hash_id("rt-1"), hash_id("rt-2a"), hash_id("rt-2b"));
    let (a, b) = tokio::join!(
        store.rotate_refresh_token(&old, &a, at(1)),
        store.rotate_refresh_token(&old, &b, at(1)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "one winner: {a} {b}");
    let current = if a { "rt-2a" } else { "rt-2b" };
    let loser = if a { "rt-2b" } else { "rt-2a" };
    assert!(
        store
            .get_refresh_token(&hash_id(loser))
            .await
            .unwrap()
            .is_none()
    );
    let old = store
        .get_refresh_token(&hash_id("rt-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(old.rotated_at.is_some(), "the presented token is retired");
    let new = store
        .get_refresh_token(&hash_id(current))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.rotated_at, None);
    assert!(new.family.last_used_at > f.last_used_at);

    // The token page lists the newest access token of the sign-in only.
    let second = family_token(&f, &uuid::Uuid::new_v4().to_string(), -1);
    store
        .insert_vended_token(&second, None, &audit("oauth.refresh"))
        .await
        .unwrap();
    let vended = token("local:alice", at(-5), at(3600));
    store
        .insert_vended_token(&vended, None, &audit("token.mint"))
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list_vended_tokens("local:alice", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.jti)
        .collect();
    assert_eq!(listed, vec![second.jti.clone(), vended.jti.clone()]);

    // Revoking one access token of the sign-in ends it: every token of it is refused.
    store
        .revoke_vended_token(&second.jti, at(2), &audit("token.revoke"))
        .await
        .unwrap();
    for jti in [&first.jti, &second.jti] {
        let t = store.get_vended_token(jti).await.unwrap().unwrap();
        assert!(t.revoked_at.is_some(), "{jti} revoked");
    }
    assert!(
        store
            .get_refresh_token(&hash_id(current))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .rotate_refresh_token(&hash_id(current), &hash_id("rt-3"), at(3))
            .await
            .unwrap()
    );
    let other = store.get_vended_token(&vended.jti).await.unwrap().unwrap();
    assert!(
        other.revoked_at.is_none(),
        "a vended token is not part of it"
    );
    assert!(matches!(
        store
            .revoke_vended_token(&second.jti, at(4), &audit("token.revoke"))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn sign_ins_end_with_their_client_or_consent_and_expire_when_idle_or_old(backend: Backend) {
    let (store, _dir) = open(backend).await;
    let client = RegisteredClient {
        client_id: "dcr.c".to_owned(),
        metadata: serde_json::from_value(json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
            .unwrap(),
        registered_from: "127.0.0.1".to_owned(),
        created_at: at(0),
        last_used_at: at(0),
    };
    let limits = RegistrationLimits {
        max_clients: 10,
        max_recent: 10,
        max_recent_per_address: 10,
        since: at(-3600),
    };
    store
        .insert_oauth_client(&client, limits, &audit("oauth_client.register"))
        .await
        .unwrap();
    let start = |f: RefreshFamily, rt: &'static str| {
        let store = store.clone();
        async move {
            let t = family_token(&f, &f.id, 0);
            store
                .insert_vended_token(&t, None, &audit("oauth.token"))
                .await
                .unwrap();
            store
                .insert_refresh_family(&f, &hash_id(rt), &audit("oauth_refresh.start"))
                .await
                .unwrap();
            t.jti
        }
    };
    let alice = start(
        family(&uuid::Uuid::new_v4().to_string(), "dcr.c", "local:alice"),
        "a",
    )
    .await;
    let bob = start(
        family(&uuid::Uuid::new_v4().to_string(), "dcr.c", "local:bob"),
        "b",
    )
    .await;
    let other = start(
        family(&uuid::Uuid::new_v4().to_string(), "dcr.o", "local:alice"),
        "o",
    )
    .await;
    let revoked = |jti: String| {
        let store = store.clone();
        async move {
            store
                .get_vended_token(&jti)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        }
    };

    // Forgetting alice's consent ends alice's sign-ins of that client only.
    let consent = Consent {
        subject: "local:alice".to_owned(),
        client_id: "dcr.c".to_owned(),
        scopes: vec![],
        resource: String::new(),
        granted_at: at(0),
    };
    store
        .put_consent(&consent, &audit("oauth_consent.grant"))
        .await
        .unwrap();
    store
        .delete_consent("local:alice", "dcr.c", &audit("oauth_consent.revoke"))
        .await
        .unwrap();
    assert!(
        store
            .get_refresh_token(&hash_id("a"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(revoked(alice).await);
    assert!(
        store
            .get_refresh_token(&hash_id("b"))
            .await
            .unwrap()
            .is_some()
    );

    // Deleting the client ends everyone's.
    store
        .delete_oauth_client("dcr.c", &audit("oauth_client.delete"))
        .await
        .unwrap();
    assert!(
        store
            .get_refresh_token(&hash_id("b"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(revoked(bob).await);
    assert!(!revoked(other.clone()).await);
    assert_eq!(
        store
            .end_refresh_families(
                Families::OfConsent {
                    subject: "local:nobody",
                    client_id: "dcr.o"
                },
                at(0),
                None
            )
            .await
            .unwrap(),
        0
    );

    // Past the absolute end, or idle too long: deleted by housekeeping.
    let mut old = family(&uuid::Uuid::new_v4().to_string(), "dcr.o", "local:carol");
    old.expires_at = at(-1);
    start(old, "old").await;
    let mut idle = family(&uuid::Uuid::new_v4().to_string(), "dcr.o", "local:carol");
    idle.last_used_at = at(-7200);
    start(idle, "idle").await;
    assert_eq!(
        store
            .delete_expired_refresh_families(at(0), at(-3600))
            .await
            .unwrap(),
        2
    );
    for rt in ["old", "idle"] {
        assert!(
            store
                .get_refresh_token(&hash_id(rt))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        store
            .get_refresh_token(&hash_id("o"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .end_refresh_families(Families::OfClient("dcr.o"), at(0), Some(&audit("x")))
            .await
            .unwrap(),
        1
    );
    assert!(revoked(other).await);
}
