-- Registered A2A agents: like servers, the whole record as JSON text in `doc`, plus copies of
-- the fields lists filter on. Tags are matched inside `doc` with json_each (agents are few).
CREATE TABLE agents (
    path        TEXT PRIMARY KEY NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    revision    INTEGER NOT NULL,
    enabled     INTEGER NOT NULL,
    lifecycle   TEXT NOT NULL,
    owner_team  TEXT NOT NULL,
    search_text TEXT NOT NULL,
    doc         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX agents_lifecycle ON agents (lifecycle, path);
CREATE INDEX agents_owner ON agents (owner_team, path);
