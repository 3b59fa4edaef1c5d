-- Refresh tokens of OAuth clients (OAuth 2.1 §4.3, RFC 9700 §4.14), rotated at every use.
-- A family is one sign-in: its `id` is the authorization code's id (= the `jti` of the first
-- access token), it holds what every token of the sign-in carries (user, groups, scopes, the
-- RFC 8707 resource, '' = none, and the browser session's hash), an absolute end
-- (`expires_at`) and the last use (for the idle lifetime). Revoking a sign-in deletes its
-- family; the audit log keeps the history.
CREATE TABLE oauth_refresh_families (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    username     TEXT NOT NULL,
    group_list   TEXT NOT NULL,
    scope_list   TEXT NOT NULL,
    resource     TEXT NOT NULL,
    session_hash TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_refresh_families_subject ON oauth_refresh_families (subject, client_id);
CREATE INDEX oauth_refresh_families_client ON oauth_refresh_families (client_id);
-- Every refresh token a family was given, by SHA-256 (hex) of the token: the current one has
-- no `rotated_at`; presenting one that has is a reuse, which ends the family.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
-- The family an access token was issued in (NULL = none), so revoking a family revokes its
-- access tokens through the ledger the gateways read.
ALTER TABLE vended_tokens ADD COLUMN refresh_family TEXT;
CREATE INDEX vended_tokens_refresh_family ON vended_tokens (refresh_family);
