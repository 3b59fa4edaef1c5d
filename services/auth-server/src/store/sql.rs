//! The SQL shared by both backends, as a macro that implements [`super::AuthStore`] for a
//! backend's store type.
//!
//! Why a macro and not generic code: sqlx's generic bounds over `Database` are long and leak
//! into every signature, while the statements are the same text for both backends (`$1`
//! placeholders work on SQLite too). The invoking module supplies:
//! - `ts(Timestamp) -> impl Encode` and `get_ts` / `get_opt_ts(&Row, column)`: how instants
//!   are bound and read (canonical text on SQLite, `TIMESTAMPTZ` on PostgreSQL);
//! - `Self::begin(&self)`, `Self::reader(&self)`: where writes and reads go;
//! - `Self::lock_subject(&mut Transaction, subject)`: serialises mints of one user.
//!
//! Column names avoid words that are keywords in either dialect (`group_list`, not `groups`).

/// Column lists shared by several statements (macros, so statements stay `&'static str`,
/// which sqlx requires of SQL text).
macro_rules! session_columns {
    () => {
        "id_hash, subject, username, provider, group_list, scope_list, csrf_token, id_token, created_at, expires_at, last_seen_at"
    };
}
macro_rules! key_columns {
    () => {
        "kid, generation, public_jwk, sealed_key, created_at, retire_after"
    };
}
macro_rules! token_columns {
    () => {
        "jti, subject, username, scope_list, audience, description, issued_at, expires_at, revoked_at, client_id, refresh_family"
    };
}

macro_rules! client_columns {
    () => {
        "client_id, metadata, registered_from, created_at, last_used_at"
    };
}

macro_rules! family_columns {
    () => {
        "id, client_id, subject, username, group_list, scope_list, resource, session_hash, created_at, expires_at, last_used_at"
    };
}

/// The ids of the families a [`super::Families`] names, with `$1` (id), `$2` (client) and
/// `$3` (subject) bound to its filter (`''` = any); a statement appends it after `IN`.
macro_rules! families_where {
    () => {
        "(SELECT id FROM oauth_refresh_families WHERE ($1 = '' OR id = $1)
          AND ($2 = '' OR client_id = $2) AND ($3 = '' OR subject = $3))"
    };
}

macro_rules! consent_columns {
    () => {
        "subject, client_id, scope_list, resource, granted_at"
    };
}

macro_rules! impl_auth_store {
    ($store:ty, $db:ty, $backend:literal) => {
        type Row = <$db as sqlx::Database>::Row;
        type Tx<'a> = sqlx::Transaction<'a, $db>;

        impl $store {
            async fn write_audit(tx: &mut Tx<'_>, audit: &AuditRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit (id, at, request_id, actor, action, resource_type, resource_id, details)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&audit.id)
                .bind(ts(audit.at))
                .bind(audit.request_id.as_deref())
                .bind(&audit.actor)
                .bind(&audit.action)
                .bind(&audit.resource_type)
                .bind(&audit.resource_id)
                .bind(to_json(&audit.details)?)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Ends a transaction whose statement had to change a row: `NotFound` (rolled
            /// back) when it changed none, else its audit record and the commit.
            async fn commit_changed(mut tx: Tx<'_>, changed: u64, audit: &AuditRecord) -> Result<()> {
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            fn user_from(row: &Row) -> Result<UserRecord> {
                Ok(UserRecord {
                    username: row.try_get("username").map_err(map_err)?,
                    password_hash: row.try_get("password_hash").map_err(map_err)?,
                    groups: from_json(&row.try_get::<String, _>("group_list").map_err(map_err)?)?,
                    disabled: row.try_get("disabled").map_err(map_err)?,
                    created_at: get_ts(row, "created_at")?,
                    updated_at: get_ts(row, "updated_at")?,
                })
            }

            fn session_from(row: &Row) -> Result<SessionRecord> {
                let id_token: Option<String> = row.try_get("id_token").map_err(map_err)?;
                Ok(SessionRecord {
                    id_hash: row.try_get("id_hash").map_err(map_err)?,
                    subject: row.try_get("subject").map_err(map_err)?,
                    username: row.try_get("username").map_err(map_err)?,
                    provider: row.try_get("provider").map_err(map_err)?,
                    groups: from_json(&row.try_get::<String, _>("group_list").map_err(map_err)?)?,
                    scopes: from_json(&row.try_get::<String, _>("scope_list").map_err(map_err)?)?,
                    csrf_token: row.try_get("csrf_token").map_err(map_err)?,
                    id_token: id_token.as_deref().map(from_json).transpose()?,
                    created_at: get_ts(row, "created_at")?,
                    expires_at: get_ts(row, "expires_at")?,
                    last_seen_at: get_ts(row, "last_seen_at")?,
                })
            }

            fn key_from(row: &Row) -> Result<SigningKeyRecord> {
                Ok(SigningKeyRecord {
                    kid: row.try_get("kid").map_err(map_err)?,
                    generation: row.try_get("generation").map_err(map_err)?,
                    public_jwk: row.try_get("public_jwk").map_err(map_err)?,
                    sealed_key: from_json(&row.try_get::<String, _>("sealed_key").map_err(map_err)?)?,
                    created_at: get_ts(row, "created_at")?,
                    retire_after: get_opt_ts(row, "retire_after")?,
                })
            }

            fn token_from(row: &Row) -> Result<VendedToken> {
                Ok(VendedToken {
                    jti: row.try_get("jti").map_err(map_err)?,
                    subject: row.try_get("subject").map_err(map_err)?,
                    username: row.try_get("username").map_err(map_err)?,
                    scopes: from_json(&row.try_get::<String, _>("scope_list").map_err(map_err)?)?,
                    audience: row.try_get("audience").map_err(map_err)?,
                    description: row.try_get("description").map_err(map_err)?,
                    issued_at: get_ts(row, "issued_at")?,
                    expires_at: get_ts(row, "expires_at")?,
                    revoked_at: get_opt_ts(row, "revoked_at")?,
                    client_id: row.try_get("client_id").map_err(map_err)?,
                    refresh_family: row.try_get("refresh_family").map_err(map_err)?,
                })
            }

            fn family_from(row: &Row) -> Result<RefreshFamily> {
                let resource: String = row.try_get("resource").map_err(map_err)?;
                Ok(RefreshFamily {
                    id: row.try_get("id").map_err(map_err)?,
                    client_id: row.try_get("client_id").map_err(map_err)?,
                    subject: row.try_get("subject").map_err(map_err)?,
                    username: row.try_get("username").map_err(map_err)?,
                    groups: from_json(&row.try_get::<String, _>("group_list").map_err(map_err)?)?,
                    scopes: from_json(&row.try_get::<String, _>("scope_list").map_err(map_err)?)?,
                    resource,
                    session: row.try_get("session_hash").map_err(map_err)?,
                    created_at: get_ts(row, "created_at")?,
                    expires_at: get_ts(row, "expires_at")?,
                    last_used_at: get_ts(row, "last_used_at")?,
                })
            }

            /// Ends the families `(id, client_id, subject)` selects (`""` = any; see
            /// [`super::Families`]) inside `tx`: their access tokens are revoked, their refresh
            /// tokens and the families deleted. Returns how many families.
            async fn end_families(
                tx: &mut Tx<'_>,
                (id, client_id, subject): (&str, &str, &str),
                at: Timestamp,
            ) -> Result<u64> {
                sqlx::query(concat!(
                    "UPDATE vended_tokens SET revoked_at = $4
                     WHERE revoked_at IS NULL AND refresh_family IN ",
                    families_where!()
                ))
                .bind(id)
                .bind(client_id)
                .bind(subject)
                .bind(ts(at))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                sqlx::query(concat!(
                    "DELETE FROM oauth_refresh_tokens WHERE family_id IN ",
                    families_where!()
                ))
                .bind(id)
                .bind(client_id)
                .bind(subject)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                let done = sqlx::query(
                    "DELETE FROM oauth_refresh_families WHERE ($1 = '' OR id = $1)
                     AND ($2 = '' OR client_id = $2) AND ($3 = '' OR subject = $3)",
                )
                .bind(id)
                .bind(client_id)
                .bind(subject)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            fn client_from(row: &Row) -> Result<RegisteredClient> {
                Ok(RegisteredClient {
                    client_id: row.try_get("client_id").map_err(map_err)?,
                    metadata: from_json(&row.try_get::<String, _>("metadata").map_err(map_err)?)?,
                    registered_from: row.try_get("registered_from").map_err(map_err)?,
                    created_at: get_ts(row, "created_at")?,
                    last_used_at: get_ts(row, "last_used_at")?,
                })
            }

            fn consent_from(row: &Row) -> Result<Consent> {
                Ok(Consent {
                    subject: row.try_get("subject").map_err(map_err)?,
                    client_id: row.try_get("client_id").map_err(map_err)?,
                    scopes: from_json(&row.try_get::<String, _>("scope_list").map_err(map_err)?)?,
                    resource: row.try_get("resource").map_err(map_err)?,
                    granted_at: get_ts(row, "granted_at")?,
                })
            }

            fn audit_from(row: &Row) -> Result<AuditRecord> {
                Ok(AuditRecord {
                    id: row.try_get("id").map_err(map_err)?,
                    at: get_ts(row, "at")?,
                    request_id: row.try_get("request_id").map_err(map_err)?,
                    actor: row.try_get("actor").map_err(map_err)?,
                    action: row.try_get("action").map_err(map_err)?,
                    resource_type: row.try_get("resource_type").map_err(map_err)?,
                    resource_id: row.try_get("resource_id").map_err(map_err)?,
                    details: from_json(&row.try_get::<String, _>("details").map_err(map_err)?)?,
                })
            }

            async fn insert_key(tx: &mut Tx<'_>, key: &SigningKeyRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, generation, public_jwk, sealed_key, created_at, retire_after)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(key.generation)
                .bind(&key.public_jwk)
                .bind(to_json(&key.sealed_key)?)
                .bind(ts(key.created_at))
                .bind(key.retire_after.map(ts))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
                Ok(())
            }
        }


        #[async_trait]
        impl AuthStore for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                self.ping_all().await
            }

            async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "INSERT INTO users (username, password_hash, group_list, disabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(to_json(&user.groups)?)
                .bind(user.disabled)
                .bind(ts(user.created_at))
                .bind(ts(user.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_user(&self, username: &str) -> Result<Option<UserRecord>> {
                sqlx::query(
                    "SELECT username, password_hash, group_list, disabled, created_at, updated_at
                     FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::user_from(&r))
                .transpose()
            }

            async fn set_password(
                &self,
                username: &str,
                password_hash: &str,
                at: Timestamp,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3",
                )
                .bind(password_hash)
                .bind(ts(at))
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::commit_changed(tx, done.rows_affected(), audit).await
            }

            async fn insert_session(
                &self,
                session: &SessionRecord,
                replaces: Option<&str>,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                if let Some(old) = replaces {
                    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                        .bind(old)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                sqlx::query(concat!("INSERT INTO sessions (", session_columns!(), ")
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
                .bind(&session.id_hash)
                .bind(&session.subject)
                .bind(&session.username)
                .bind(&session.provider)
                .bind(to_json(&session.groups)?)
                .bind(to_json(&session.scopes)?)
                .bind(&session.csrf_token)
                .bind(session.id_token.as_ref().map(to_json).transpose()?)
                .bind(ts(session.created_at))
                .bind(ts(session.expires_at))
                .bind(ts(session.last_seen_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
                sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id_hash = $1"))
                .bind(id_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::session_from(&r))
                .transpose()
            }

            async fn touch_session(&self, id_hash: &str, at: Timestamp) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                    .bind(ts(at))
                    .bind(id_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn delete_session(
                &self,
                id_hash: &str,
                audit: Option<&AuditRecord>,
            ) -> Result<bool> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let deleted = done.rows_affected() > 0;
                if deleted && let Some(audit) = audit {
                    Self::write_audit(&mut tx, audit).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(deleted)
            }

            async fn delete_sessions(
                &self,
                user: Option<&str>,
                audit: &AuditRecord,
            ) -> Result<u64> {
                let mut tx = self.begin().await?;
                let done = match user {
                    Some(user) => {
                        sqlx::query("DELETE FROM sessions WHERE subject = $1 OR username = $1")
                            .bind(user)
                            .execute(&mut *tx)
                            .await
                    }
                    None => sqlx::query("DELETE FROM sessions").execute(&mut *tx).await,
                }
                .map_err(map_err)?;
                let count = done.rows_affected();
                let mut audit = audit.clone();
                if let Some(details) = audit.details.as_object_mut() {
                    details.insert("count".to_owned(), count.into());
                }
                Self::write_audit(&mut tx, &audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(count)
            }

            async fn delete_expired_sessions(
                &self,
                now: Timestamp,
                idle_before: Timestamp,
            ) -> Result<u64> {
                let mut tx = self.begin().await?;
                let done =
                    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                        .bind(ts(now))
                        .bind(ts(idle_before))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_first_signing_key(
                &self,
                key: &SigningKeyRecord,
                audit: &AuditRecord,
            ) -> Result<()> {
                if key.generation != 1 {
                    return Err(StoreError::Internal(
                        "the first signing key must have generation 1".to_owned(),
                    ));
                }
                let mut tx = self.begin().await?;
                Self::insert_key(&mut tx, key).await?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn rotate_signing_key(
                &self,
                new: &SigningKeyRecord,
                retire_previous_after: Timestamp,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                let retired = sqlx::query(
                    "UPDATE signing_keys SET retire_after = $1
                     WHERE generation = $2 AND retire_after IS NULL",
                )
                .bind(ts(retire_previous_after))
                .bind(new.generation - 1)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if retired.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "signing key generation {} is not the current key any more",
                        new.generation - 1
                    )));
                }
                Self::insert_key(&mut tx, new).await?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn current_signing_key(&self) -> Result<Option<SigningKeyRecord>> {
                sqlx::query(concat!("SELECT ", key_columns!(), " FROM signing_keys ORDER BY generation DESC LIMIT 1"))
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::key_from(&r))
                .transpose()
            }

            async fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRecord>> {
                sqlx::query(concat!("SELECT ", key_columns!(), " FROM signing_keys
                     WHERE retire_after IS NULL OR retire_after > $1
                     ORDER BY generation DESC"))
                .bind(ts(now))
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::key_from)
                .collect()
            }

            async fn delete_retired_signing_keys(&self, before: Timestamp) -> Result<u64> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM signing_keys WHERE retire_after IS NOT NULL AND retire_after < $1",
                )
                .bind(ts(before))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_vended_token(
                &self,
                token: &VendedToken,
                limit: Option<MintLimit>,
                audit: &AuditRecord,
            ) -> Result<MintOutcome> {
                let mut tx = self.begin().await?;
                if let Some(limit) = limit {
                    Self::lock_subject(&mut tx, &token.subject).await?;
                    // Only tokens vended through the API count: sign-in tokens of OAuth
                    // clients (client_id set) are not mints.
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, MIN(issued_at) AS oldest FROM vended_tokens
                         WHERE subject = $1 AND issued_at >= $2 AND client_id IS NULL",
                    )
                    .bind(&token.subject)
                    .bind(ts(limit.since))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let count: i64 = row.try_get("n").map_err(map_err)?;
                    if count >= i64::from(limit.max) {
                        let oldest = get_opt_ts(&row, "oldest")?.unwrap_or(limit.since);
                        return Ok(MintOutcome::Limited { oldest });
                    }
                }
                sqlx::query(concat!("INSERT INTO vended_tokens (", token_columns!(), ")
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
                .bind(&token.jti)
                .bind(&token.subject)
                .bind(&token.username)
                .bind(to_json(&token.scopes)?)
                .bind(&token.audience)
                .bind(token.description.as_deref())
                .bind(ts(token.issued_at))
                .bind(ts(token.expires_at))
                .bind(token.revoked_at.map(ts))
                .bind(token.client_id.as_deref())
                .bind(token.refresh_family.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(MintOutcome::Recorded)
            }

            async fn get_vended_token(&self, jti: &str) -> Result<Option<VendedToken>> {
                sqlx::query(concat!("SELECT ", token_columns!(), " FROM vended_tokens WHERE jti = $1"))
                .bind(jti)
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::token_from(&r))
                .transpose()
            }

            async fn list_vended_tokens(
                &self,
                subject: &str,
                limit: u32,
            ) -> Result<Vec<VendedToken>> {
                // A sign-in that refreshes gets a new access token every few minutes: list only
                // the newest of each, which stands for the sign-in (revoking it ends them all).
                sqlx::query(concat!("SELECT ", token_columns!(), " FROM vended_tokens t WHERE subject = $1
                     AND (refresh_family IS NULL OR NOT EXISTS (SELECT 1 FROM vended_tokens n
                          WHERE n.refresh_family = t.refresh_family AND (n.issued_at > t.issued_at
                          OR (n.issued_at = t.issued_at AND n.jti > t.jti))))
                     ORDER BY issued_at DESC, jti DESC LIMIT $2"))
                .bind(subject)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::token_from)
                .collect()
            }

            async fn revoke_vended_token(
                &self,
                jti: &str,
                at: Timestamp,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE vended_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
                )
                .bind(ts(at))
                .bind(jti)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let family: Option<String> = sqlx::query("SELECT refresh_family FROM vended_tokens WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .map(|r| r.try_get("refresh_family"))
                    .transpose()
                    .map_err(map_err)?
                    .flatten();
                let ended = match family {
                    Some(f) => Self::end_families(&mut tx, (&f, "", ""), at).await?,
                    None => 0,
                };
                Self::commit_changed(tx, done.rows_affected() + ended, audit).await
            }

            async fn list_revocations(
                &self,
                since: Option<Timestamp>,
                now: Timestamp,
            ) -> Result<Vec<VendedToken>> {
                let since = since.unwrap_or_else(|| {
                    Timestamp::from_datetime(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
                });
                sqlx::query(concat!("SELECT ", token_columns!(), " FROM vended_tokens
                     WHERE revoked_at IS NOT NULL AND revoked_at >= $1 AND expires_at > $2
                     ORDER BY revoked_at, jti"))
                .bind(ts(since))
                .bind(ts(now))
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::token_from)
                .collect()
            }

            async fn insert_refresh_family(
                &self,
                family: &RefreshFamily,
                token_hash: &str,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query(concat!("INSERT INTO oauth_refresh_families (", family_columns!(), ")
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
                .bind(&family.id)
                .bind(&family.client_id)
                .bind(&family.subject)
                .bind(&family.username)
                .bind(to_json(&family.groups)?)
                .bind(to_json(&family.scopes)?)
                .bind(&family.resource)
                .bind(family.session.as_deref())
                .bind(ts(family.created_at))
                .bind(ts(family.expires_at))
                .bind(ts(family.last_used_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query("INSERT INTO oauth_refresh_tokens (token_hash, family_id, issued_at) VALUES ($1, $2, $3)")
                    .bind(token_hash)
                    .bind(&family.id)
                    .bind(ts(family.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>> {
                let Some(row) = sqlx::query("SELECT family_id, rotated_at FROM oauth_refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                else {
                    return Ok(None);
                };
                let rotated_at = get_opt_ts(&row, "rotated_at")?;
                let family_id: String = row.try_get("family_id").map_err(map_err)?;
                Ok(sqlx::query(concat!("SELECT ", family_columns!(), " FROM oauth_refresh_families WHERE id = $1"))
                    .bind(family_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::family_from(&r))
                    .transpose()?
                    .map(|family| RefreshTokenRecord { family, rotated_at }))
            }

            async fn rotate_refresh_token(
                &self,
                old_hash: &str,
                new_hash: &str,
                at: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.begin().await?;
                // The winner of two concurrent rotations is the one whose UPDATE changes the
                // row; the other sees `rotated_at` set and changes nothing.
                let Some(row) = sqlx::query(
                    "UPDATE oauth_refresh_tokens SET rotated_at = $1
                     WHERE token_hash = $2 AND rotated_at IS NULL
                     AND family_id IN (SELECT id FROM oauth_refresh_families)
                     RETURNING family_id",
                )
                .bind(ts(at))
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                else {
                    return Ok(false);
                };
                let family_id: String = row.try_get("family_id").map_err(map_err)?;
                sqlx::query("INSERT INTO oauth_refresh_tokens (token_hash, family_id, issued_at) VALUES ($1, $2, $3)")
                    .bind(new_hash)
                    .bind(&family_id)
                    .bind(ts(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("UPDATE oauth_refresh_families SET last_used_at = $1 WHERE id = $2")
                    .bind(ts(at))
                    .bind(&family_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn end_refresh_families(
                &self,
                which: Families<'_>,
                at: Timestamp,
                audit: Option<&AuditRecord>,
            ) -> Result<u64> {
                let mut tx = self.begin().await?;
                let count = Self::end_families(&mut tx, which.filter(), at).await?;
                if let Some(audit) = audit {
                    let mut audit = audit.clone();
                    if let Some(details) = audit.details.as_object_mut() {
                        details.insert("count".to_owned(), count.into());
                    }
                    Self::write_audit(&mut tx, &audit).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(count)
            }

            async fn delete_expired_refresh_families(
                &self,
                now: Timestamp,
                idle_before: Timestamp,
            ) -> Result<u64> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "DELETE FROM oauth_refresh_tokens WHERE family_id IN
                     (SELECT id FROM oauth_refresh_families WHERE expires_at < $1 OR last_used_at < $2)",
                )
                .bind(ts(now))
                .bind(ts(idle_before))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let done = sqlx::query(
                    "DELETE FROM oauth_refresh_families WHERE expires_at < $1 OR last_used_at < $2",
                )
                .bind(ts(now))
                .bind(ts(idle_before))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_oauth_client(
                &self,
                client: &RegisteredClient,
                limits: RegistrationLimits,
                audit: &AuditRecord,
            ) -> Result<RegistrationOutcome> {
                let mut tx = self.begin().await?;
                // One lock for every registration: the counts below and the insert must not
                // interleave with another replica's.
                Self::lock_subject(&mut tx, "oauth-registration").await?;
                let count = |sql: &'static str| sqlx::query(sql);
                let total: i64 = count("SELECT COUNT(*) AS n FROM oauth_clients")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .try_get("n")
                    .map_err(map_err)?;
                if total >= i64::from(limits.max_clients) {
                    return Ok(RegistrationOutcome::Full);
                }
                let since = ts(limits.since);
                let recent = [
                    (
                        count("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM oauth_clients
                               WHERE created_at >= $1")
                        .bind(since.clone()),
                        limits.max_recent,
                    ),
                    (
                        count("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM oauth_clients
                               WHERE created_at >= $1 AND registered_from = $2")
                        .bind(since)
                        .bind(client.registered_from.clone()),
                        limits.max_recent_per_address,
                    ),
                ];
                for (query, max) in recent {
                    let row = query.fetch_one(&mut *tx).await.map_err(map_err)?;
                    let n: i64 = row.try_get("n").map_err(map_err)?;
                    if n >= i64::from(max) {
                        let oldest = get_opt_ts(&row, "oldest")?.unwrap_or(limits.since);
                        return Ok(RegistrationOutcome::Limited { oldest });
                    }
                }
                sqlx::query(concat!("INSERT INTO oauth_clients (", client_columns!(), ")
                     VALUES ($1, $2, $3, $4, $5)"))
                .bind(&client.client_id)
                .bind(to_json(&client.metadata)?)
                .bind(&client.registered_from)
                .bind(ts(client.created_at))
                .bind(ts(client.last_used_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(RegistrationOutcome::Recorded)
            }

            async fn get_oauth_client(&self, client_id: &str) -> Result<Option<RegisteredClient>> {
                sqlx::query(concat!("SELECT ", client_columns!(), " FROM oauth_clients WHERE client_id = $1"))
                .bind(client_id)
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::client_from(&r))
                .transpose()
            }

            async fn list_oauth_clients(&self, limit: u32) -> Result<Vec<RegisteredClient>> {
                sqlx::query(concat!("SELECT ", client_columns!(), " FROM oauth_clients
                     ORDER BY created_at DESC, client_id DESC LIMIT $1"))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::client_from)
                .collect()
            }

            async fn delete_oauth_client(&self, client_id: &str, audit: &AuditRecord) -> Result<()> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("DELETE FROM oauth_consents WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() > 0 {
                    Self::end_families(&mut tx, ("", client_id, ""), Timestamp::now()).await?;
                }
                Self::commit_changed(tx, done.rows_affected(), audit).await
            }

            async fn touch_oauth_client(&self, client_id: &str, at: Timestamp) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query("UPDATE oauth_clients SET last_used_at = $1 WHERE client_id = $2")
                    .bind(ts(at))
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn delete_unused_oauth_clients(&self, before: Timestamp) -> Result<u64> {
                let mut tx = self.begin().await?;
                let unused: Vec<String> = sqlx::query("SELECT client_id FROM oauth_clients WHERE last_used_at < $1")
                    .bind(ts(before))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(|r| r.try_get("client_id"))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(map_err)?;
                for client_id in &unused {
                    Self::end_families(&mut tx, ("", client_id, ""), Timestamp::now()).await?;
                }
                let done = sqlx::query("DELETE FROM oauth_clients WHERE last_used_at < $1")
                    .bind(ts(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "DELETE FROM oauth_consents WHERE client_id NOT IN (SELECT client_id FROM oauth_clients)",
                )
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn put_consent(&self, consent: &Consent, audit: &AuditRecord) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query(concat!("INSERT INTO oauth_consents (", consent_columns!(), ")
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (subject, client_id) DO UPDATE SET scope_list = $3,
                     resource = $4, granted_at = $5"))
                .bind(&consent.subject)
                .bind(&consent.client_id)
                .bind(to_json(&consent.scopes)?)
                .bind(&consent.resource)
                .bind(ts(consent.granted_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_consent(&self, subject: &str, client_id: &str) -> Result<Option<Consent>> {
                sqlx::query(concat!("SELECT ", consent_columns!(), " FROM oauth_consents
                     WHERE subject = $1 AND client_id = $2"))
                .bind(subject)
                .bind(client_id)
                .fetch_optional(self.reader())
                .await
                .map_err(map_err)?
                .map(|r| Self::consent_from(&r))
                .transpose()
            }

            async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>> {
                sqlx::query(concat!("SELECT ", consent_columns!(), " FROM oauth_consents
                     WHERE subject = $1 ORDER BY granted_at DESC, client_id"))
                .bind(subject)
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::consent_from)
                .collect()
            }

            async fn delete_consent(
                &self,
                subject: &str,
                client_id: &str,
                audit: &AuditRecord,
            ) -> Result<()> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM oauth_consents WHERE subject = $1 AND client_id = $2")
                    .bind(subject)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() > 0 {
                    Self::end_families(&mut tx, ("", client_id, subject), Timestamp::now()).await?;
                }
                Self::commit_changed(tx, done.rows_affected(), audit).await
            }

            async fn login_failures(
                &self,
                key: &str,
                since: Timestamp,
            ) -> Result<LoginFailures> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(at) AS oldest, MAX(at) AS newest FROM login_failures
                     WHERE throttle_key = $1 AND at >= $2",
                )
                .bind(key)
                .bind(ts(since))
                .fetch_one(self.reader())
                .await
                .map_err(map_err)?;
                let count: i64 = row.try_get("n").map_err(map_err)?;
                Ok(LoginFailures {
                    count: count.max(0) as u64,
                    oldest: get_opt_ts(&row, "oldest")?,
                    newest: get_opt_ts(&row, "newest")?,
                })
            }

            async fn record_login_failure(&self, keys: &[String], at: Timestamp) -> Result<()> {
                let mut tx = self.begin().await?;
                for key in keys {
                    sqlx::query(
                        "INSERT INTO login_failures (throttle_key, at, id) VALUES ($1, $2, $3)",
                    )
                    .bind(key)
                    .bind(ts(at))
                    .bind(uuid::Uuid::new_v4().to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn clear_login_failures(&self, key: &str) -> Result<()> {
                let mut tx = self.begin().await?;
                sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn prune_login_failures(&self, before: Timestamp) -> Result<u64> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM login_failures WHERE at < $1")
                    .bind(ts(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn insert_audit(&self, audit: &AuditRecord) -> Result<()> {
                let mut tx = self.begin().await?;
                Self::write_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditRecord>> {
                sqlx::query(
                    "SELECT id, at, request_id, actor, action, resource_type, resource_id, details
                     FROM audit
                     WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action = $2)
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(filter.actor.as_deref().unwrap_or(""))
                .bind(filter.action.as_deref().unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await
                .map_err(map_err)?
                .iter()
                .map(Self::audit_from)
                .collect()
            }
        }
    };
}
