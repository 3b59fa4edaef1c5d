-- Scope documents (the policy) and the policy version every change bumps, in one transaction.
CREATE TABLE scopes (
    name TEXT PRIMARY KEY NOT NULL,
    doc  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('policy_version', 0);
