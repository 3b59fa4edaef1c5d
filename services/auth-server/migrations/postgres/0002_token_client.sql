-- Tokens issued to an OAuth client at sign-in (authorization code flow) carry the client's id;
-- NULL = vended through /api/v1/tokens. Only vended tokens count against tokens.mints_per_hour.
ALTER TABLE vended_tokens ADD COLUMN client_id TEXT;
