-- OAuth clients registered dynamically (RFC 7591). `metadata` is the registered client
-- metadata as JSON; `registered_from` the client address of the registration (for the
-- per-address rate limit); `last_used_at` the last token issued to it (for the expiry of
-- unused clients). Instants are canonical text, like every other table here.
CREATE TABLE oauth_clients (
    client_id       TEXT PRIMARY KEY,
    metadata        TEXT NOT NULL,
    registered_from TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT NOT NULL
);
CREATE INDEX oauth_clients_created ON oauth_clients (created_at);
CREATE INDEX oauth_clients_from ON oauth_clients (registered_from, created_at);
CREATE INDEX oauth_clients_used ON oauth_clients (last_used_at);
