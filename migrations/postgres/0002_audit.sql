-- The tamper-evident audit log.
-- audit_entries: one row per sequenced event; `leaf` holds the canonical bytes that
-- were hashed into the tree, verbatim. audit_hashes: every complete subtree hash
-- (level 0 = leaf hashes), so proofs are O(log n) point reads. audit_checkpoints:
-- every signed tree head. All three are append-only: triggers reject UPDATE/DELETE.

CREATE TABLE audit_entries (
    idx            BIGINT PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    tenant         TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    actor_type     TEXT,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    leaf           BYTEA NOT NULL
);
CREATE INDEX audit_entries_tenant ON audit_entries (tenant, idx);
CREATE INDEX audit_entries_actor ON audit_entries (tenant, actor_id, idx);
CREATE INDEX audit_entries_action ON audit_entries (tenant, action text_pattern_ops, idx);
CREATE INDEX audit_entries_resource ON audit_entries (tenant, resource_type, resource_id, idx);
CREATE INDEX audit_entries_time ON audit_entries (tenant, received_at_ms);

CREATE TABLE audit_hashes (
    level SMALLINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE audit_checkpoints (
    tree_size     BIGINT PRIMARY KEY,
    root          BYTEA NOT NULL,
    note          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE FUNCTION audit_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_hashes_append_only BEFORE UPDATE OR DELETE ON audit_hashes
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
