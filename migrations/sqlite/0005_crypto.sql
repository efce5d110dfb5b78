-- The encryption keyring (palisade-crypto). Key material is never stored in
-- clear: subject and blind-index keys are wrapped by a keyring key through
-- the KMS, and keyring keys themselves live in the KMS (the local KMS's key
-- file, Vault Transit, AWS KMS); only their metadata is here.

-- Versions of keyring keys. The newest 'active' version wraps new data keys;
-- 'retired' versions only unwrap. `use_count` counts data keys wrapped with the
-- version (each a GCM encryption with a random nonce under the KEK); a use is
-- reserved here before every wrap, so instances sharing the database never
-- take one version past its limit together.
CREATE TABLE crypto_key_versions (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    use_count     BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Per-subject keys (crypto-shredding). Destroying a subject sets
-- `wrapped_key` to NULL for every generation: its data is then unreadable.
-- A subject used again after that gets a new generation.
CREATE TABLE crypto_subject_keys (
    subject         TEXT NOT NULL,
    generation      BIGINT NOT NULL,
    kek_name        TEXT NOT NULL,
    kek_version     BIGINT NOT NULL,
    wrapped_key     BLOB,
    created_at_ms   BIGINT NOT NULL,
    destroyed_at_ms BIGINT,
    PRIMARY KEY (subject, generation)
);

-- HMAC keys of blind indexes, and the settings (normalization, length)
-- every value of the index was computed with.
CREATE TABLE crypto_index_keys (
    name          TEXT PRIMARY KEY,
    kek_name      TEXT NOT NULL,
    kek_version   BIGINT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    settings      TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Rewrap jobs: re-wrap the stored keys above under the newest version of a
-- keyring key, resumably (the cursor is the last row done, by primary key).
CREATE TABLE crypto_rewrap_jobs (
    id                TEXT PRIMARY KEY,
    kek_name          TEXT NOT NULL,
    target_version    BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    phase             TEXT NOT NULL,
    cursor_key        TEXT NOT NULL DEFAULT '',
    cursor_generation BIGINT NOT NULL DEFAULT 0,
    total             BIGINT NOT NULL DEFAULT 0,
    rewrapped         BIGINT NOT NULL DEFAULT 0,
    started_at_ms     BIGINT NOT NULL,
    updated_at_ms     BIGINT NOT NULL,
    error             TEXT
);
