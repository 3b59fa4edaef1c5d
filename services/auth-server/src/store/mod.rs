//! Storage of the auth-server, behind one trait with two implementations: PostgreSQL
//! ([`postgres`], Aurora in production) and SQLite ([`sqlite`], the embedded default). The
//! backend is chosen by URL scheme (`postgres://`, `sqlite://`).
//!
//! Both implementations are generated from one body of SQL ([`sql`]): statements use `$1`
//! placeholders, which both drivers accept, and each backend supplies only what differs
//! (pools, how timestamps are bound, the per-user lock for the mint limit, migrations).
//!
//! Rules every backend keeps (the behaviour suite in `tests/it/store.rs` runs on both):
//! - A call that returns `Ok` has made its write durable: SQLite commits with
//!   `synchronous=FULL` in WAL mode; PostgreSQL commits with its default `synchronous_commit`.
//! - A change and its audit record are written in one transaction: both or neither.
//! - Session ids are never stored: only their SHA-256 ([`crate::session::hash_id`]).
//! - Signing keys are stored sealed with the keyring; each key has a `generation`, unique, so
//!   two replicas rotating at once cannot both win: the loser gets `Conflict`.
//! - The mint limit is checked and the token recorded in one transaction, serialised per user
//!   (an advisory lock on PostgreSQL, the single writer connection on SQLite), so concurrent
//!   mints on several replicas cannot exceed it.
//! - Driver errors are mapped with intent: duplicate key → `Conflict`, unreachable →
//!   `Unavailable`; anything else is `Internal` and carries the driver's message for the log.

#[macro_use]
mod sql;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use mcpgw_core::secrets::SealedSecret;
use mcpgw_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, Backend};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opening the SQLite store (`mcpgw_core::sqlite`) fails as one of these two.
impl From<mcpgw_core::sqlite::OpenError> for StoreError {
    fn from(e: mcpgw_core::sqlite::OpenError) -> Self {
        e.into_store(Self::Unavailable, Self::Internal)
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("serializing: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("a stored value does not parse: {e}")))
}

/// A local user (the embedded identity provider).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("groups", &self.groups)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A browser session. The id itself is only in the cookie; the store keys sessions by its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session id.
    pub id_hash: String,
    /// Stable identity: `local:<username>` or `<provider>:<IdP subject>`.
    pub subject: String,
    /// For people: the local username or the IdP's `preferred_username`.
    pub username: String,
    /// `local` or the id of the OIDC provider.
    pub provider: String,
    /// Groups and scopes at login (a snapshot: changes apply at the next login).
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// The value `X-CSRF-Token` must carry on cookie-authenticated mutations.
    pub csrf_token: String,
    /// The IdP's ID token, sealed, for RP-initiated logout (`id_token_hint`).
    pub id_token: Option<SealedSecret>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_seen_at: Timestamp,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("subject", &self.subject)
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signing key as stored: the public JWK in clear, the PKCS#8 private key sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// 1 for the first key, +1 per rotation; unique. The highest generation signs.
    pub generation: i64,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// The private key, sealed with context `signing_key:<kid>`.
    pub sealed_key: SealedSecret,
    pub created_at: Timestamp,
    /// When set, the key no longer signs and leaves the JWKS after this instant (every token
    /// it signed has expired by then).
    pub retire_after: Option<Timestamp>,
}

/// One vended token in the ledger (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VendedToken {
    /// The token's `jti`.
    pub jti: String,
    /// The `sub` of the token: the user who minted it.
    pub subject: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// The OAuth client a sign-in token was issued to (`/oauth/token`); absent for tokens
    /// vended through `/api/v1/tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The sign-in (refresh token family, [`RefreshFamily::id`]) the token was issued in;
    /// revoking the token ends the sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_family: Option<String>,
}

/// One sign-in of an OAuth client that holds a refresh token: the family of every refresh
/// token rotated from the first (`crate::refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// The authorization code's id, which is also the `jti` of the first access token.
    pub id: String,
    pub client_id: String,
    pub subject: String,
    pub username: String,
    /// Groups and scopes as the code carried them (every refreshed token carries the same).
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// The RFC 8707 resource of the sign-in; empty = none.
    pub resource: String,
    /// The store key of the browser session the sign-in came from.
    pub session: Option<String>,
    pub created_at: Timestamp,
    /// The absolute end: no refresh after it, however recent the last one.
    pub expires_at: Timestamp,
    /// The last rotation (or the sign-in), for the idle lifetime.
    pub last_used_at: Timestamp,
}

/// A refresh token found by its hash: its family, and when it was rotated (`Some`: it is not
/// the current token any more, and presenting it is a reuse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub family: RefreshFamily,
    pub rotated_at: Option<Timestamp>,
}

/// Which sign-ins to end.
#[derive(Debug, Clone, Copy)]
pub enum Families<'a> {
    One(&'a str),
    OfClient(&'a str),
    OfConsent {
        subject: &'a str,
        client_id: &'a str,
    },
}

impl Families<'_> {
    /// `(id, client_id, subject)` with `""` for "any": never all three empty.
    fn filter(&self) -> (&str, &str, &str) {
        match *self {
            Self::One(id) => (id, "", ""),
            Self::OfClient(client_id) => ("", client_id, ""),
            Self::OfConsent { subject, client_id } => ("", client_id, subject),
        }
    }
}

/// The per-user mint limit to enforce while recording a token.
#[derive(Debug, Clone, Copy)]
pub struct MintLimit {
    /// Most tokens one subject may have minted since `since`.
    pub max: u32,
    pub since: Timestamp,
}

/// What recording a mint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintOutcome {
    Recorded,
    /// Nothing was written: the limit is reached. `oldest` is the earliest mint in the window;
    /// a new mint is allowed once it leaves the window.
    Limited {
        oldest: Timestamp,
    },
}

/// A client registered through `/oauth/register` (RFC 7591).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisteredClient {
    pub client_id: String,
    pub metadata: crate::registration::ClientMetadata,
    /// The client address the registration came from.
    pub registered_from: String,
    pub created_at: Timestamp,
    /// The registration, or the last token issued to it: the client is deleted when this is
    /// older than `oauth.registration.unused_client_days`.
    pub last_used_at: Timestamp,
}

/// What a user allowed a registered client (the page is not shown again while the user's
/// scopes and the resource are the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consent {
    pub subject: String,
    pub client_id: String,
    /// The user's scopes when they allowed it, sorted.
    pub scopes: Vec<String>,
    /// The RFC 8707 resource of that sign-in; empty = none.
    pub resource: String,
    pub granted_at: Timestamp,
}

/// The registration limits to enforce while recording a client.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationLimits {
    /// Most clients at once.
    pub max_clients: u32,
    /// Most registrations since `since`, from everyone and from the client's address.
    pub max_recent: u32,
    pub max_recent_per_address: u32,
    pub since: Timestamp,
}

/// What recording a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutcome {
    Recorded,
    /// Nothing was written: `max_clients` is reached.
    Full,
    /// Nothing was written: a rate limit is reached; `oldest` is the earliest registration in
    /// the window that counted (another is allowed once it leaves the window).
    Limited {
        oldest: Timestamp,
    },
}

/// One audit record: who did what to which resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Time-ordered unique id (UUIDv7).
    pub id: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Subject of the actor (`local:admin`, `system:bootstrap`, …).
    pub actor: String,
    /// E.g. `login.success`, `token.mint`, `sessions.revoke`, `signing_key.rotate`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// Action-specific facts (never secrets, tokens or session ids).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl AuditRecord {
    pub fn new(
        actor: &str,
        request_id: Option<&str>,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at: Timestamp::now(),
            request_id: request_id.map(str::to_owned),
            actor: actor.to_owned(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            details,
        }
    }
}

/// The failed logins of one throttle key in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFailures {
    pub count: u64,
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
}

/// Filters for reading the audit log; all given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the store answers.
    async fn ping(&self) -> Result<()>;

    // ---- local users ----

    /// Inserts a user; `Conflict` when the username exists.
    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> Result<()>;

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>>;

    /// Replaces a user's password hash; `NotFound` when there is no such user.
    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<()>;

    // ---- sessions ----

    /// Inserts a session and, in the same transaction, deletes the session it replaces (the
    /// one the browser held before logging in), so a login always rotates the id.
    async fn insert_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
        audit: &AuditRecord,
    ) -> Result<()>;

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;

    /// Records activity on a session (for the idle timeout).
    async fn touch_session(&self, id_hash: &str, at: Timestamp) -> Result<()>;

    /// Deletes one session; `false` when there was none. Audited when `audit` is given.
    async fn delete_session(&self, id_hash: &str, audit: Option<&AuditRecord>) -> Result<bool>;

    /// Deletes the sessions of a user (matched by subject or username), or every session
    /// (`None`), returning how many.
    async fn delete_sessions(&self, user: Option<&str>, audit: &AuditRecord) -> Result<u64>;

    /// Deletes sessions past their end or idle since before `idle_before`.
    async fn delete_expired_sessions(&self, now: Timestamp, idle_before: Timestamp) -> Result<u64>;

    // ---- signing keys ----

    /// Stores the first key (generation 1); `Conflict` when one exists.
    async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: &AuditRecord,
    ) -> Result<()>;

    /// Stores `new` (whose generation must be the current one + 1) and marks the current key
    /// to retire after `retire_previous_after`. `Conflict` when another rotation won.
    async fn rotate_signing_key(
        &self,
        new: &SigningKeyRecord,
        retire_previous_after: Timestamp,
        audit: &AuditRecord,
    ) -> Result<()>;

    /// The key that signs: the highest generation.
    async fn current_signing_key(&self) -> Result<Option<SigningKeyRecord>>;

    /// Keys to publish: not retired, or retiring after `now`; newest first.
    async fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRecord>>;

    /// Deletes keys that retired before `before` (their private keys with them).
    async fn delete_retired_signing_keys(&self, before: Timestamp) -> Result<u64>;

    // ---- vended tokens ----

    /// Records a token with its audit record, unless `limit` is reached. `None`: no limit
    /// (sign-in tokens of OAuth clients); tokens with a `client_id` never count against one.
    /// `Conflict` when the `jti` exists (how an authorization code is used only once).
    async fn insert_vended_token(
        &self,
        token: &VendedToken,
        limit: Option<MintLimit>,
        audit: &AuditRecord,
    ) -> Result<MintOutcome>;

    async fn get_vended_token(&self, jti: &str) -> Result<Option<VendedToken>>;

    /// A subject's tokens, newest first.
    async fn list_vended_tokens(&self, subject: &str, limit: u32) -> Result<Vec<VendedToken>>;

    /// Marks a token revoked, and ends the sign-in it was issued in (if any: see
    /// [`AuthStore::end_refresh_families`]); `NotFound` when it does not exist or is already
    /// revoked and had no sign-in left to end.
    async fn revoke_vended_token(
        &self,
        jti: &str,
        at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<()>;

    /// Revoked tokens that have not expired at `now`, revoked at or after `since`.
    async fn list_revocations(
        &self,
        since: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Vec<VendedToken>>;

    // ---- refresh tokens ----

    /// Records a sign-in with its first refresh token (by hash) and its audit record.
    async fn insert_refresh_family(
        &self,
        family: &RefreshFamily,
        token_hash: &str,
        audit: &AuditRecord,
    ) -> Result<()>;

    async fn get_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>>;

    /// Makes `new_hash` the current token of the family of `old_hash` and marks the family
    /// used at `at`, only while `old_hash` is the current one (checked and written in one
    /// statement): `false` when another request rotated it first or the family ended.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        at: Timestamp,
    ) -> Result<bool>;

    /// Ends sign-ins: deletes their families and refresh tokens and revokes their access
    /// tokens in the ledger (so gateways refuse them), in one transaction, audited when
    /// `audit` is given (with the count). Returns how many families ended.
    async fn end_refresh_families(
        &self,
        which: Families<'_>,
        at: Timestamp,
        audit: Option<&AuditRecord>,
    ) -> Result<u64>;

    /// Deletes sign-ins past their absolute end or last used before `idle_before`.
    async fn delete_expired_refresh_families(
        &self,
        now: Timestamp,
        idle_before: Timestamp,
    ) -> Result<u64>;

    // ---- registered OAuth clients ----

    /// Records a client with its audit record, unless a limit is reached (checked and written
    /// in one transaction, serialised across replicas).
    async fn insert_oauth_client(
        &self,
        client: &RegisteredClient,
        limits: RegistrationLimits,
        audit: &AuditRecord,
    ) -> Result<RegistrationOutcome>;

    async fn get_oauth_client(&self, client_id: &str) -> Result<Option<RegisteredClient>>;

    /// Registered clients, newest first.
    async fn list_oauth_clients(&self, limit: u32) -> Result<Vec<RegisteredClient>>;

    /// Deletes a client, what users allowed it and its sign-ins (ending them as
    /// [`AuthStore::end_refresh_families`] does); `NotFound` when there is none.
    async fn delete_oauth_client(&self, client_id: &str, audit: &AuditRecord) -> Result<()>;

    /// Records that a token was issued to the client.
    async fn touch_oauth_client(&self, client_id: &str, at: Timestamp) -> Result<()>;

    /// Deletes clients last used before `before` (and what users allowed them), returning how
    /// many clients.
    async fn delete_unused_oauth_clients(&self, before: Timestamp) -> Result<u64>;

    /// Records (or replaces) what a user allowed a client.
    async fn put_consent(&self, consent: &Consent, audit: &AuditRecord) -> Result<()>;

    async fn get_consent(&self, subject: &str, client_id: &str) -> Result<Option<Consent>>;

    /// A user's consents, newest first.
    async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>>;

    /// Forgets what a user allowed a client and ends that user's sign-ins of the client (as
    /// [`AuthStore::end_refresh_families`] does); `NotFound` when nothing was allowed.
    async fn delete_consent(
        &self,
        subject: &str,
        client_id: &str,
        audit: &AuditRecord,
    ) -> Result<()>;

    // ---- login throttling ----

    /// How many failures `key` had since `since`, and the oldest and newest of them.
    async fn login_failures(&self, key: &str, since: Timestamp) -> Result<LoginFailures>;

    /// Records one failure under each key.
    async fn record_login_failure(&self, keys: &[String], at: Timestamp) -> Result<()>;

    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;

    /// Deletes failures older than `before`.
    async fn prune_login_failures(&self, before: Timestamp) -> Result<u64>;

    // ---- audit ----

    async fn insert_audit(&self, audit: &AuditRecord) -> Result<()>;

    /// Audit records matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>>;
}

/// Opens the store the config names (creating the SQLite file, running migrations).
pub async fn open(config: &AuthConfig) -> anyhow::Result<Arc<dyn AuthStore>> {
    let url = config.store_url();
    match config.backend() {
        Some(Backend::Sqlite) => Ok(Arc::new(
            sqlite::SqliteStore::open(&url, &config.store).await?,
        )),
        Some(Backend::Postgres) => {
            let source = &config.store.backend.password;
            let password = source
                .resolve(&config.secrets.aws)
                .await
                .map_err(|e| anyhow::anyhow!("store.password: {e}"))?;
            let store = postgres::PostgresStore::open(&url, &config.store, password).await?;
            let every = config.store.backend.password_refresh_seconds;
            if source.is_rotatable() && every > 0 {
                store.refresh_password(
                    source.clone(),
                    config.secrets.aws.clone(),
                    std::time::Duration::from_secs(every),
                );
            }
            Ok(Arc::new(store))
        }
        None => anyhow::bail!("store.url must start with sqlite: or postgres://"),
    }
}
