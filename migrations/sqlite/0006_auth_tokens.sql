-- Tokens Palisade issues: refresh-token families, revocations and signing keys.

-- A refresh-token family is one login session: every refresh token rotated
-- from the first one belongs to it. Presenting a token that was already used
-- revokes the family (RFC 9700 §4.14.2, refresh token rotation).
CREATE TABLE auth_refresh_families (
    id             TEXT PRIMARY KEY,        -- UUIDv7; the access tokens' `sid` claim
    tenant         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    audience       TEXT NOT NULL,
    claims         TEXT NOT NULL,           -- extra claims (JSON object) re-issued on refresh
    access_ttl_s   BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,         -- absolute end of the session, whatever the rotations
    revoked_at_ms  BIGINT,
    revoked_reason TEXT
);
CREATE INDEX auth_refresh_families_subject ON auth_refresh_families (tenant, subject);

-- One row per refresh token ever issued. Only SHA-256 of the token is kept:
-- the token is 256 random bits, so the hash cannot be reversed or guessed.
CREATE TABLE auth_refresh_tokens (
    token_hash    BLOB PRIMARY KEY,
    family_id     TEXT NOT NULL REFERENCES auth_refresh_families (id) ON DELETE CASCADE,
    issued_at_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms    BIGINT                    -- set when rotated; a second use is a replay
);
CREATE INDEX auth_refresh_tokens_family ON auth_refresh_tokens (family_id);

-- Revocations of access tokens, read by every instance into memory. `kind`
-- is `jti` (one token), `family` (every token of a refresh family, by `sid`)
-- or `subject` (every token of `subject` issued before `cutoff_ms`).
-- `seq` orders them for incremental polling; `keep_until_ms` is when every
-- token the row can affect has expired, so the row can be deleted.
CREATE TABLE auth_revocations (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    value         TEXT NOT NULL,
    cutoff_ms     BIGINT NOT NULL,
    keep_until_ms BIGINT NOT NULL
    -- No insert time as on PostgreSQL: SQLite serialises writes, so polling by
    -- `seq` alone never skips a row.
);

-- Versions of the JWT signing key. `material` is the private key sealed by
-- the keyring (never in clear); the rest is public metadata.
CREATE TABLE auth_signing_keys (
    kid             TEXT PRIMARY KEY,
    version         BIGINT NOT NULL UNIQUE,
    alg             TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    signs_from_ms   BIGINT NOT NULL,
    retire_after_ms BIGINT,
    material        BLOB NOT NULL
);
