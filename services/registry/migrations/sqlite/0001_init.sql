-- The registry's tables on SQLite. Each server is one row: the whole record as JSON text in
-- `doc`, plus copies of the fields that lists filter on, kept in step inside one transaction.
CREATE TABLE servers (
    path        TEXT PRIMARY KEY NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    revision    INTEGER NOT NULL,
    enabled     INTEGER NOT NULL,
    lifecycle   TEXT NOT NULL,
    owner_team  TEXT NOT NULL,
    environment TEXT NOT NULL,
    search_text TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    doc         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX servers_lifecycle ON servers (lifecycle, path);
CREATE INDEX servers_enabled ON servers (enabled, path);
CREATE INDEX servers_owner ON servers (owner_team, path);
CREATE INDEX servers_environment ON servers (environment, path);
CREATE INDEX servers_updated ON servers (updated_at);

CREATE TABLE server_tags (
    path TEXT NOT NULL REFERENCES servers (path) ON DELETE CASCADE,
    tag  TEXT NOT NULL,
    PRIMARY KEY (tag, path)
) WITHOUT ROWID;
CREATE INDEX server_tags_path ON server_tags (path);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    revoked_at  TEXT,
    doc         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit (
    id            TEXT PRIMARY KEY NOT NULL,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    doc           TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX audit_resource ON audit (resource_type, resource_id, id);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);
