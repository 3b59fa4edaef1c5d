-- What a user allowed a dynamically registered client, so the page is not shown again for the
-- same (user, client, scopes, resource): `scope_list` is the user's scopes at the time (JSON
-- array, sorted), `resource` the RFC 8707 resource ('' = none). One row per (user, client):
-- allowing again replaces it. Revoked by the user (or with the client).
CREATE TABLE oauth_consents (
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope_list TEXT NOT NULL,
    resource   TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX oauth_consents_client ON oauth_consents (client_id);
