-- The auth-server's tables on SQLite. Instants are canonical UTC text
-- (2026-11-21T14:03:27.123456Z), which sorts in time order; lists are JSON text.

-- Local users of the embedded identity provider.
CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,            -- argon2id PHC string
    group_list    TEXT NOT NULL,            -- JSON array
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

-- Browser sessions, keyed by the SHA-256 of the session id (the id is only in the cookie).
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    subject      TEXT NOT NULL,
    username     TEXT NOT NULL,
    provider     TEXT NOT NULL,
    group_list   TEXT NOT NULL,             -- JSON array, snapshot at login
    scope_list   TEXT NOT NULL,             -- JSON array, snapshot at login
    csrf_token   TEXT NOT NULL,
    id_token     TEXT,                      -- sealed ID token (OIDC), for id_token_hint
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_username ON sessions (username);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Token signing keys; the highest generation signs, retired keys stay published until
-- retire_after.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    generation   INTEGER NOT NULL UNIQUE,
    public_jwk   TEXT NOT NULL,
    sealed_key   TEXT NOT NULL,             -- SealedSecret JSON of the PKCS#8 key
    created_at   TEXT NOT NULL,
    retire_after TEXT
) WITHOUT ROWID;

-- The ledger of vended tokens (never the tokens themselves).
CREATE TABLE vended_tokens (
    jti         TEXT PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    username    TEXT NOT NULL,
    scope_list  TEXT NOT NULL,              -- JSON array
    audience    TEXT NOT NULL,
    description TEXT,
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
) WITHOUT ROWID;
CREATE INDEX vended_tokens_subject ON vended_tokens (subject, issued_at);
CREATE INDEX vended_tokens_revoked ON vended_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Failed password logins, per username and per client address, for the attempt limit.
CREATE TABLE login_failures (
    throttle_key TEXT NOT NULL,
    at           TEXT NOT NULL,
    id           TEXT NOT NULL,
    PRIMARY KEY (throttle_key, at, id)
) WITHOUT ROWID;
CREATE INDEX login_failures_at ON login_failures (at);

CREATE TABLE audit (
    id            TEXT PRIMARY KEY NOT NULL, -- UUIDv7: sorts in time order
    at            TEXT NOT NULL,
    request_id    TEXT,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       TEXT NOT NULL             -- JSON object
) WITHOUT ROWID;
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);
