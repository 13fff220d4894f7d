-- Upstream OAuth authorizations: one per (client, subject), the subject being empty for the
-- client's own (operator's) authorization and the caller for per-user OAuth. `secret` holds the
-- registration and the tokens, sealed (AES-256-GCM, see store/secret.rs); the other columns
-- are what the sessions API lists, never secret.
CREATE TABLE oauth_tokens (
    client TEXT NOT NULL,
    subject TEXT NOT NULL,
    secret TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires_at INTEGER,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (client, subject)
);
