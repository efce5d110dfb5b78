-- Foundation: API keys for Palisade's own API, and stored responses for Idempotency-Key.
-- Times are Unix milliseconds (BIGINT) in both backends, so the same code reads both.

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    lookup        TEXT NOT NULL UNIQUE,   -- public part of the key, used to find the row
    secret_hash   BYTEA NOT NULL,         -- HMAC-SHA-256(pepper, secret); the key itself is never stored
    name          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    scopes        TEXT NOT NULL,          -- space-separated
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE TABLE idempotency_records (
    owner         TEXT NOT NULL,          -- the API key id, so keys never collide across callers
    key           TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,         -- SHA-256 of method, path and body
    status        INTEGER,                -- NULL while the first request is still running
    content_type  TEXT,
    body          BYTEA,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_records_created ON idempotency_records (created_at_ms);
